"""Documents of every kind, made of records as the runs make them (every optional part filled),
for the tests of files, presentation and the report: check, compare, e2e, conversion, study."""

from __future__ import annotations

from kernelprof.results.check import (
    CheckCase,
    CheckDocument,
    CheckedBuild,
    OracleFigures,
    TimedBuildAgreement,
    TimedInputCheck,
)
from kernelprof.results.compare import (
    Bandwidth,
    Case,
    CompareCase,
    CompareDocument,
    CompareRow,
    GraphTiming,
    NoiseProbe,
    PhaseTiming,
    Profile,
    RoundTiming,
    Speedup,
    WallTimes,
)
from kernelprof.results.document import DeviceInfo, Environment
from kernelprof.results.e2e import (
    AnnResult,
    Attribution,
    CategoryChange,
    Conversion,
    ConversionDocument,
    ConversionRow,
    Difference,
    DirectTraining,
    E2EDocument,
    E2ETask,
    Fit,
    LaunchDiagnosis,
    NamedTime,
    NeuronCheck,
    NeuronDifferences,
    OperationChange,
    RankFigures,
    SettingDifference,
    StepAttribution,
    StepBreakdown,
    StepLength,
    TrainingRow,
)
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.results.flags import Flag
from kernelprof.results.study import StudyDocument, StudyPreset
from kernelprof.results.timing import Measurement, WarmUp
from reference_kernels.model import LIFConfig

CPU = DeviceInfo(type="cpu", name="x86_64 CPU, 2 threads")
ENVIRONMENT = Environment(device=CPU, platform="Linux", versions={"torch": "2.14.1"},
                          git_commit="abc")  # fmt: skip
CONFIG = LIFConfig(surrogate="superspike", alpha=1.0)
TIMED = ["ref-torch", "ref-compile", "spikingjelly", "snntorch", "norse", "lava-dl"]
NOT_RUN = {"ref-triton": "unavailable", "spikingjelly-legacy-cupy": "unavailable",
           "sinabs": "unsupported"}  # fmt: skip


def oracle() -> OracleFigures:
    return OracleFigures(oracle_verdict="exact", oracle_reason="spikes equal",
                         spike_mismatches=1, spike_mismatch_fraction=3e-5, neurons_diverged=1,
                         threshold_ties=0, firing_rate=0.25, v_max_abs_diff=1e-7,
                         grad_max_abs_diff=5e-7, grad_cosine=1.0)  # fmt: skip


def checked(impl: str, verdict: str = "exact") -> CheckedBuild:
    if verdict in ("unavailable", "unsupported"):
        return CheckedBuild(impl=impl, framework=impl, verdict=verdict, status=verdict,
                            reason=f"{impl} cannot run here")  # fmt: skip
    return CheckedBuild(
        impl=impl, framework=impl, verdict=verdict, reason="fixed point" if verdict !=
        "exact" else "spikes equal", oracle=oracle(), path="a long code path " * 5,
        timed_code="spikes = node(x)", timeable=True,
        timed_build=TimedBuildAgreement(neurons=4096, spike_mismatches=0, neurons_diverged=0,
                                        threshold_ties=0, grad_excess=-1e-5,
                                        grad_max_abs_diff=1e-7, tolerance=1e-4),
        timed_input=TimedInputCheck(verdict="exact", reason="ok", neurons=4096,
                                    spike_mismatch_fraction=0.0, grad_cosine=1.0),
    )  # fmt: skip


def check_document() -> CheckDocument:
    rows = [checked(impl, "approximate" if impl == "lava-dl" else "exact") for impl in TIMED]
    rows += [checked(impl, verdict) for impl, verdict in NOT_RUN.items()]
    return CheckDocument(environment=ENVIRONMENT, config=CONFIG, rows=tuple(rows),
                         case=CheckCase(T=8, N=4096, dtype="fp32", device="cpu"),
                         notes=("a plugin failed to load",))  # fmt: skip


def phase(ms: float, kernels: bool = True) -> PhaseTiming:
    rounds = []
    for number in (1, 2, 3):
        samples = tuple(ms / 1e3 * (1 + 0.02 * k) for k in (-1, 0, 1))
        call = Measurement(samples_s=samples, first_call_s=0.2 if number == 1 else None,
                           label="x fwd", cache_flush="read 64 MiB", minor_faults_per_call=12.0,
                           events_busy_median_s=0.8 * ms / 1e3 if kernels else None)  # fmt: skip
        device = Measurement(samples_s=tuple(0.8 * s for s in samples)) if kernels else call
        warm = WarmUp(calls=10, seconds=0.5, settled=True, tolerance=0.05,
                      medians_s=(ms / 1e3,), times_s=(ms / 1e3,) * 10)  # fmt: skip
        rounds.append(RoundTiming(round=number, started_at=100.0 + number, call=call,
                                  device=device, device_source="kernels" if kernels else
                                  "host clock", launch_s=1.2 * ms / 1e3,
                                  warm_up=warm if number == 1 else None))  # fmt: skip
    return PhaseTiming(rounds=tuple(rounds), op_fraction=None if kernels else 0.8)


def energy(joules: float | None, unit: str = "call") -> EnergyMeasurement:
    if joules is None:
        return EnergyMeasurement.unavailable("n/a: no RAPL counter readable", unit=unit)
    return EnergyMeasurement(
        joules_per_unit=joules, unit=unit, window_joules_per_unit=(joules,) * 3,
        window_raw_joules=(3.0,) * 3, window_units=(10,) * 3, window_seconds=(1.0,) * 3,
        idle_watts=70.0, counter="NVML total-energy counter", scope="the windows",
        flags=(Flag(kind="energy", subject="x", message="window 1: too short"),),
    )  # fmt: skip


def compare_row(index: int, impl: str, with_energy: bool) -> CompareRow:
    flags = []
    if index == 1:
        flags.append(Flag(kind="rounds_disagree", subject=f"{impl} fwd",
                          message="fwd rounds disagree: 1, 2, 3 ms",
                          figures={"slowest_over_fastest": 3.0}))  # fmt: skip
    if index == 2:
        flags.append(Flag(kind="launch_bound", subject=f"{impl} fwd",
                          message=f"{impl} fwd launch-bound: call 2000 ms vs device 1000 ms "
                          "(+100%); the host launches in 2000 ms",
                          figures={"call_s": 2.0, "device_s": 1.0, "launch_s": 2.0}))  # fmt: skip
    return CompareRow(
        checked=checked(impl, "approximate" if impl == "lava-dl" else "exact"),
        timings={p: phase(213.985 + 100 * index) for p in ("fwd", "bwd", "fwd+bwd")},
        profile=Profile(kernels_per_fwd_bwd=1108, kernel_kind="aten ops (CPU)",
                        peak_bytes=256 * 2**20, saved_bytes=152 * 2**20,
                        energy=energy(1.203 if with_energy else None),
                        op_fraction={"fwd": 0.8}, trace="t.json",
                        graph_timings={"fwd": GraphTiming(unavailable_reason="n/a: CPU")}),
        wall=WallTimes(check_s=1.0, rounds_s=(1.0, 1.1, 1.2), profile_s=2.0),
        bandwidth={p: Bandwidth(bytes=192 * 2**20, gb_per_s=2.5, copy_fraction=0.103,
                                call_copy_fraction=0.09) for p in ("fwd", "bwd", "fwd+bwd")},
        speedup=Speedup(value=0.375 + index, low=0.3 + index, high=10.5 + index, rounds=3),
        speedup_call=Speedup(value=0.5 + index, low=0.45 + index, high=10.55 + index, rounds=3),
        flags=tuple(flags),
    )  # fmt: skip


def compare_case(with_energy: bool = False, T: int = 8) -> CompareCase:
    rows = [compare_row(index, impl, with_energy) for index, impl in enumerate(TIMED)]
    rows += [CompareRow(checked=checked(impl, verdict)) for impl, verdict in NOT_RUN.items()]
    probe = NoiseProbe(workload="x * 2.0", median_s=0.008, spread=0.04, calls=20)
    return CompareCase(case=Case(T=T, N=1_048_576, dtype="fp32"), device=CPU,
                       copy_bandwidth_gb_per_s=24.2, rows=tuple(rows), baseline="spikingjelly",
                       noise_rounds=(probe,) * 3, noise_spread=0.04, spread_limit=0.1)  # fmt: skip


def compare_document(with_energy: bool = False) -> CompareDocument:
    return CompareDocument(
        environment=ENVIRONMENT, config=CONFIG, copy_bandwidth_gb_per_s=24.2,
        noise_probe=NoiseProbe(workload="x * 2.0", median_s=0.008, spread=0.04, calls=20),
        cases=(compare_case(with_energy, 4), compare_case(with_energy, 8)),
        notes=("rounds: 3",),
    )  # fmt: skip


def task(**more) -> E2ETask:
    fields = {"model": "cnn", "dataset": "digits", "device": "cpu", "config": CONFIG,
              "max_steps": 3, "limit_train": 128, "limit_test": 32, "data_dir": "/data",
              "trace_dir": "/traces"}  # fmt: skip
    return E2ETask(**{**fields, **more})


def attribution_record(path: str, step_us: float) -> StepAttribution:
    return StepAttribution(
        path=path, kind="host", detailed=True, steps=24, step_us=step_us,
        categories_us={"lif fwd": step_us / 2, "conv fwd": step_us / 2},
        host_categories_us={"lif fwd": step_us / 2}, launch={"operators": 100.0,
                                                             "outside_operators_share": 0.3},
        operators={"lif fwd": {"aten::mul": NamedTime(count=8.0, us=step_us / 4)}},
        gpu={}, step_lengths_us=(step_us,) * 3, unlinked_nodes=1, problems=("none",),
        per_step=(StepLength(length_us=step_us, host_us={"lif fwd": 1.0}),),
    )  # fmt: skip


def training(accuracy: float, step_s: float) -> DirectTraining:
    step_us = 1e6 * step_s
    breakdown = StepBreakdown(
        coarse=attribution_record("a.json", step_us),
        detailed=attribution_record("b.json", step_us),
        plain_step_us=step_us, profiled_step_us=step_us, profiled_over_plain=1.02,
        profiled_over_plain_interval=(0.98, 1.06), matches_plain_step=True,
        within_tolerance=True, detailed_overhead=0.2, plain_steps_us=(step_us,) * 24,
        paired_ratios=(1.02,) * 24, problems=(),
    )  # fmt: skip
    return DirectTraining(
        dataset_source="scikit-learn load_digits", test_samples=360, network="conv ...",
        epochs=1, training_steps=23, epoch_s=(1.0,), step_s=(step_s,) * 23, step_median_s=step_s,
        samples_per_s=64 / step_s, final_loss=0.5, test_accuracy=accuracy,
        energy=energy(None, "epoch"), breakdown=breakdown, peak_bytes=2**30,
        peak_kind="process peak RSS", notes=("a note",), trace="e.json", ops_trace="e_ops.json",
        rank=0, world_size=2, total_samples_per_s=1000.0,
        ranks=(RankFigures(rank=0, steps=23, step_median_s=step_s, samples_per_s=500.0,
                           communication_s=0.001, profiled_step_s=step_s),),
    )  # fmt: skip


def e2e_document(setting: str = "canonical", dataset: str = "digits") -> E2EDocument:
    differences = NeuronDifferences(
        settings=(SettingDifference(setting="tau", default="2.0", source="lif.py",
                                    canonical="2.0"),),
        check=NeuronCheck(input="check's input", same_neuron=False, verdict="WRONG",
                          spike_mismatch_fraction=0.4, canonical_firing_rate=0.25,
                          default_firing_rate=0.7, grad_cosine=0.35),
    )  # fmt: skip
    rows = (
        TrainingRow(framework="spikingjelly", status="ok", training=training(0.9, 0.020),
                    neuron_setting=setting),
        TrainingRow(framework="snntorch", status="ok", training=training(0.85, 0.030),
                    neuron_setting=setting, neuron_differences=differences),
        TrainingRow(framework="reference", status="ok", training=training(0.91, 0.010)),
        TrainingRow(framework="lava-dl", status="unsupported", reason="cannot express it"),
    )  # fmt: skip
    operations = (OperationChange(name="aten::mul", a_count=8, b_count=16, delta_count=8,
                                  a_us=10.0, b_us=20.0, delta_us=10.0),)  # fmt: skip
    category = CategoryChange(name="lif fwd", a_us=5.0, b_us=15.0, delta_us=10.0,
                              operations=operations)  # fmt: skip
    attribution = Attribution(
        fastest="spikingjelly",
        differences={"snntorch": Difference(total_s=0.01, plain_total_s=0.011,
                                            by_category_s={"lif fwd": 0.005},
                                            named="operators", categories=(category,))},
        launch={"snntorch": LaunchDiagnosis(launch_bound=False, text="100 operators/step",
                                            stats={"operators": 100.0})},
    )  # fmt: skip
    return E2EDocument(environment=ENVIRONMENT, task=task(neuron_setting=setting,
                       dataset=dataset), rows=rows, attribution=attribution,
                       world_size=2)  # fmt: skip


def fit() -> Fit:
    return Fit(epochs=1, training_steps=20, epoch_s=(2.0,), train_s=2.0, step_median_s=0.1,
               samples_per_s=640.0, steps_by_mode={"ANN": 20},
               step_median_s_by_mode={"ANN": 0.1})  # fmt: skip


def conversion_document(dataset: str = "digits") -> ConversionDocument:
    def converted(accuracy: float, trained: bool) -> Conversion:
        return Conversion(route="converts the shared trained ANN",
                          accuracy_by_T={"1": 0.1, "2": 0.5, "4": accuracy},
                          test_accuracy=accuracy, inference_batch_median_s=0.01,
                          inference_samples_per_s=6400.0, test_samples=360, peak_bytes=2**30,
                          peak_kind="process peak RSS", convert_s=None if trained else 0.5,
                          training=fit() if trained else None, notes=("a note",))  # fmt: skip

    rows = (
        ConversionRow(framework="spikingjelly", status="ok", conversion=converted(0.9, False)),
        ConversionRow(framework="lava-dl", status="ok", conversion=converted(0.95, True)),
        ConversionRow(framework="snntorch", status="unsupported", reason="no converter"),
    )
    ann = AnnResult(status="ok", dataset_source="digits", network="conv", fit=fit(),
                    test_accuracy=0.93)  # fmt: skip
    return ConversionDocument(environment=ENVIRONMENT, task=task(T=4, dataset=dataset), ann=ann,
                              rows=rows)  # fmt: skip


def study_document() -> StudyDocument:
    from kernelprof.results.analysis import check_claims

    direct = (e2e_document("canonical"), e2e_document("framework-defaults"))
    conversion = (conversion_document(),)
    return StudyDocument(
        environment=ENVIRONMENT, preset=StudyPreset(name="quick", datasets=("digits",),
                                                    models=("cnn",), epochs=10, T=8,
                                                    conversion_T=4),
        device="cpu", device_name="x86_64 CPU", commit="abc", date="2026-12-05", wall_s=60.0,
        direct=direct, conversion=conversion, claims=check_claims(direct, conversion),
    )  # fmt: skip


def profile_document():
    """Made by the analysis from a run, as the command line makes it: two layers (a neuron
    called 8 times a step, a linear one) and the step's phases."""
    from kernelprof.results import layers
    from kernelprof.results.profile import (
        FasterPath,
        FasterSearch,
        Inspection,
        LayerCounts,
        LayerSeen,
        NeuronCall,
        PathCheck,
        ProfileRun,
        ProfileTask,
    )

    times = {"lif1 fwd": 400.0, "lif1 bwd": 600.0, "fc1 fwd": 200.0, "fc1 bwd": 300.0,
             "loss": 50.0, "loss bwd": 20.0, "optimizer": 80.0, "data loading": 100.0,
             "host-to-device copy": 10.0, "other fwd": 120.0, "other": 120.0}  # fmt: skip
    step_us = sum(times.values())
    attributed = StepAttribution(
        path="profile.json", kind="host", detailed=False, steps=4, step_us=step_us,
        categories_us=times, host_categories_us=times, launch={}, gpu={},
        operators={"lif1 fwd": {"aten::mul": NamedTime(count=16.0, us=150.0)},
                   "fc1 bwd": {"aten::mm": NamedTime(count=2.0, us=250.0)}},
        step_lengths_us=(step_us,) * 4,
        per_step=(StepLength(length_us=step_us, host_us=times),) * 4,
    )  # fmt: skip
    breakdown = StepBreakdown(
        coarse=attributed, detailed=attributed, plain_step_us=step_us * 0.98,
        profiled_step_us=step_us, profiled_over_plain=1.02,
        profiled_over_plain_interval=(0.99, 1.05), matches_plain_step=True,
        within_tolerance=True, detailed_overhead=0.15, plain_steps_us=(step_us,) * 5,
        paired_ratios=(1.02,) * 4,
    )  # fmt: skip
    run = ProfileRun(
        layers=(
            LayerSeen(name="lif1", type="snntorch._neurons.leaky.Leaky", category="neuron",
                      calls=(8, 8, 8, 8),
                      neuron=NeuronCall(framework="snnTorch", path="per-step call",
                                        steps_per_call=1, neurons=32 * 100, dtype="fp32",
                                        element_bytes=4)),
            LayerSeen(name="fc1", type="torch.nn.modules.linear.Linear", category="linear",
                      calls=(8, 8, 8, 8)),
        ),
        breakdown=breakdown, copy_bandwidth=10e9, steps_seen=24, uncategorised=(),
        inspection=Inspection(
            step=5, saved_bytes=3 * 2**20, parameter_bytes=40_000, peak_bytes=None,
            peak_source="n/a: the CPU allocator keeps no peak", samples=32,
            layers=(LayerCounts(name="lif1", saved_bytes=2 * 2**20, spikes=2_560,
                                outputs=25_600, rate_per_step=(0.05, 0.1, 0.15), silent=0.6),
                    LayerCounts(name="fc1", saved_bytes=2**20, synops=25_600, macs=0,
                                sources=("lif1",))),
        ),
        energy=EnergyMeasurement(joules_per_unit=0.02, unit="step", counter="RAPL package",
                                 scope="plain training steps", idle_watts=10.0,
                                 window_units=(1,) * 5, label="profile"),
        faster=FasterSearch(
            rounds=3, base_s=(0.010, 0.011, 0.012),
            paths=(FasterPath(change="kernelprof ref-compile in place of forward",
                              path="torch.compile", step_s=(0.008, 0.0088, 0.0096),
                              checks=(PathCheck(layer="lif1", verdict="exact",
                                                reason="spikes equal"),),
                              saved_bytes=2**20, saved_by_layer={"lif1": 2**19}),),
            none={"lif2": "its V carries over from an earlier call"},
        ),
    )  # fmt: skip
    task = ProfileTask(entry="script", command=("python", "train.py"), device="cpu", warmup=5,
                       steps=4, op_steps=1, marker="optimizer.step()",
                       trace_dir="/traces")  # fmt: skip
    return layers.document(task, run, ENVIRONMENT)


ALL = {
    "profile": profile_document,
    "check": check_document,
    "compare": compare_document,
    "e2e": e2e_document,
    "conversion": conversion_document,
    "study": study_document,
}
