"""A fully connected SNN trained with Norse, stepped over time with its cell modules.

norse.torch.SequentialState(nn.Flatten(), nn.Linear, LIFCell(), nn.Linear, LICell()) called
once per time step with the state it returned the step before; the leaky-integrator readout's
voltages are decoded as in Norse's MNIST tutorial (max over time, log_softmax, nll_loss).

    python examples/norse_fc.py --steps 20
    kernelprof profile -- python examples/norse_fc.py
"""

import argparse
import time

import norse.torch as norse
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class SNN(nn.Module):
    def __init__(self, seq_length: int, hidden_features=256, output_features=10):
        super().__init__()
        self.seq_length = seq_length
        self.model = norse.SequentialState(
            nn.Flatten(),
            nn.Linear(28 * 28, hidden_features),
            norse.LIFCell(),
            nn.Linear(hidden_features, output_features),
            norse.LICell(),  # non-spiking readout
        )

    def forward(self, x):
        state = None
        voltages = []
        for _ in range(self.seq_length):  # the same image as input current at every step
            v, state = self.model(x, state)
            voltages.append(v)
        return torch.stack(voltages)  # [T, N, classes]


def decode(voltages):
    x, _ = torch.max(voltages, 0)
    return F.log_softmax(x, dim=1)


def load_data(args) -> DataLoader:
    if args.data == "mnist":
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
    else:  # random images with random labels, shaped like MNIST
        generator = torch.Generator().manual_seed(args.seed)
        images = torch.rand(2048, 1, 28, 28, generator=generator)
        labels = torch.randint(0, 10, (2048,), generator=generator)
        train_set = TensorDataset(images, labels)
    return DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--T", type=int, default=8, help="simulation time steps")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", choices=["synthetic", "mnist"], default="synthetic")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = SNN(seq_length=args.T).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_loader = load_data(args)

    model.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for data, target in train_loader:
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = decode(model(data))
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()

            step += 1
            if step % 5 == 0 or step == args.steps:
                acc = (output.argmax(1) == target).float().mean().item()
                print(f"step {step}/{args.steps}  loss {loss.item():.4f}  acc {acc:.3f}")
            if step == args.steps:
                break
    print(f"done: {step} steps in {time.perf_counter() - start:.1f} s, loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
