"""The study's CNN, written as a plain SpikingJelly training script.

The same network, initial weights, LIF neuron, loss, optimiser, learning rate, batch size and T
as `kernelprof e2e --model cnn --frameworks spikingjelly --dataset mnist` trains (its defaults:
--T 8 --batch-size 64 --lr 1e-2 --weight-gain 4 --seed 0; on 28x28 images):

    conv 1->16 3x3 pad 1 -> LIF -> avgpool 2 -> conv 16->32 3x3 pad 1 -> LIF -> avgpool 2
    -> flatten -> linear 1568->10 (the readout: no LIF; logits = its mean over T)

no biases; LIF tau 2, threshold 1, hard reset to 0, decay_input, SuperSpike(alpha=1) surrogate;
the image repeated over T (direct current); Adam on cross-entropy of the logits. Only the data
differs: kernelprof keeps its data set in memory and draws its own batch order.

    python examples/study_cnn.py --steps 20
    kernelprof profile -- python examples/study_cnn.py
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch.utils.data import DataLoader, TensorDataset

WEIGHT_GAIN = 4.0  # kernelprof e2e --weight-gain: wakes the deeper LIF layers at initialisation


# kernelprof's canonical LIF (LIFConfig with surrogate="superspike", alpha=1, as e2e sets it)
LIF = dict(tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True, detach_reset=False)


def lif():
    return neuron.LIFNode(surrogate_function=surrogate.SuperSpike(alpha=1.0), step_mode="m", **LIF)


class StudyCNN(nn.Module):
    def __init__(self, T: int, seed: int, classes: int = 10):
        super().__init__()
        self.T = T
        self.conv1 = layer.Conv2d(1, 16, 3, padding=1, bias=False, step_mode="m")
        self.lif1 = lif()
        self.pool1 = layer.AvgPool2d(2, step_mode="m")
        self.conv2 = layer.Conv2d(16, 32, 3, padding=1, bias=False, step_mode="m")
        self.lif2 = lif()
        self.pool2 = layer.AvgPool2d(2, step_mode="m")
        self.flatten = layer.Flatten(step_mode="m")
        self.readout = layer.Linear(32 * 7 * 7, classes, bias=False, step_mode="m")
        # kernelprof's initial weights: kaiming-uniform (the nn.Conv2d/nn.Linear default) drawn
        # in layer order from one generator seeded with the seed, times the weight gain.
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in (self.conv1, self.conv2, self.readout):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                module.weight.mul_(WEIGHT_GAIN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)  # [B, C, H, W] -> [T, B, C, H, W]
        x_seq = self.pool1(self.lif1(self.conv1(x_seq)))
        x_seq = self.pool2(self.lif2(self.conv2(x_seq)))
        return self.readout(self.flatten(x_seq)).mean(0)  # logits [B, classes]


def load_data(args) -> DataLoader:
    if args.data == "mnist":  # normalised to zero mean, unit variance, as kernelprof does
        from torchvision import datasets, transforms

        transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
        )
        try:
            train_set = datasets.MNIST(
                args.data_dir, train=True, download=False, transform=transform
            )
        except RuntimeError:
            raise SystemExit(f"MNIST not found under {args.data_dir} (download=False)") from None
    else:  # random images (already zero mean, unit variance) with random labels
        generator = torch.Generator().manual_seed(args.seed)
        images = torch.randn(2048, 1, 28, 28, generator=generator)
        labels = torch.randint(0, 10, (2048,), generator=generator)
        train_set = TensorDataset(images, labels)
    return DataLoader(train_set, batch_size=args.batch_size, shuffle=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--T", type=int, default=8, help="simulation time steps")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", choices=["synthetic", "mnist"], default="synthetic")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)  # the DataLoader's shuffling
    device = torch.device(args.device)
    net = StudyCNN(T=args.T, seed=args.seed).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    train_loader = load_data(args)

    net.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for img, label in train_loader:
            img, label = img.to(device), label.to(device)
            optimizer.zero_grad(set_to_none=True)
            logits = net(img)
            loss = F.cross_entropy(logits, label)
            loss.backward()
            optimizer.step()
            functional.reset_net(net)

            step += 1
            if step % 5 == 0 or step == args.steps:
                acc = (logits.argmax(1) == label).float().mean().item()
                print(f"step {step}/{args.steps}  loss {loss.item():.4f}  acc {acc:.3f}")
            if step == args.steps:
                break
    print(f"done: {step} steps in {time.perf_counter() - start:.1f} s, loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
