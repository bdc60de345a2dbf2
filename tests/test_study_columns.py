"""A study of several neurons names each column with its neuron, so that two columns of one
dataset and network (LIF and CUBA, say) are never shown under the same name; a LIF column keeps
the name it always had."""

from __future__ import annotations

import dataclasses

from kernelprof.present.study import markdown
from kernelprof.results.analysis import check_claims
from kernelprof.results.e2e import column_name
from kernelprof.results.study import StudyDocument
from reference_kernels.model import CUBAConfig
from tests.documents import ENVIRONMENT, e2e_document, study_document


def test_column_names_carry_the_neuron_unless_it_is_lif():
    assert column_name("fmnist", "cnn") == "fmnist cnn"
    assert column_name("fmnist", "cnn", "lif") == "fmnist cnn"
    assert column_name("fmnist", "cnn", "cuba") == "fmnist cnn cuba"


def test_a_lif_and_a_cuba_column_are_told_apart_in_the_tables_and_the_claims():
    lif = e2e_document("canonical")
    cuba = dataclasses.replace(
        lif, task=dataclasses.replace(lif.task, config=CUBAConfig(surrogate="superspike",
                                                                   alpha=1.0)))  # fmt: skip
    assert (lif.task.column, cuba.task.column) == ("digits cnn", "digits cnn cuba")
    base = study_document()
    study = dataclasses.replace(base, direct=(lif, cuba),
                                claims=check_claims((lif, cuba), base.conversion))  # fmt: skip
    assert isinstance(study, StudyDocument) and study.environment == ENVIRONMENT
    shown = markdown(study)
    assert "| framework | digits cnn | digits cnn cuba |" in shown, shown
    assert "  - digits cnn cuba, canonical: fastest" in shown, shown
