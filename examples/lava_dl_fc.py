"""A fully connected SNN trained with lava-dl's SLAYER, in the style of its NMNIST tutorial.

Three slayer.block.cuba.Dense blocks (CUBA neurons with the tutorial's parameters, weight norm,
learnable axonal delays), the time-last layout [N, C, T] with the static image replicated over
T, slayer.loss.SpikeRate as the loss and slayer.classifier.Rate to predict.

    python examples/lava_dl_fc.py --steps 20
    kernelprof profile -- python examples/lava_dl_fc.py
"""

import argparse
import time

import lava.lib.dl.slayer as slayer
import torch
from torch.utils.data import DataLoader, TensorDataset


class Network(torch.nn.Module):
    def __init__(self, hidden=512):
        super().__init__()
        neuron_params = {
            "threshold": 1.25,
            "current_decay": 0.25,
            "voltage_decay": 0.03,
            "tau_grad": 0.03,
            "scale_grad": 3,
            "requires_grad": True,
        }
        neuron_params_drop = {**neuron_params, "dropout": slayer.neuron.Dropout(p=0.05)}
        self.blocks = torch.nn.ModuleList(
            [
                slayer.block.cuba.Dense(
                    neuron_params_drop, 28 * 28, hidden, weight_norm=True, delay=True
                ),
                slayer.block.cuba.Dense(
                    neuron_params_drop, hidden, hidden, weight_norm=True, delay=True
                ),
                slayer.block.cuba.Dense(neuron_params, hidden, 10, weight_norm=True),
            ]
        )

    def forward(self, spike):
        for block in self.blocks:
            spike = block(spike)
        return spike  # [N, 10, T]


def load_data(args) -> DataLoader:
    if args.data == "mnist":
        from torchvision import datasets, transforms

        transform = transforms.ToTensor()
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
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", choices=["synthetic", "mnist"], default="synthetic")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    net = Network().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    error = slayer.loss.SpikeRate(true_rate=0.2, false_rate=0.03, reduction="sum").to(device)
    train_loader = load_data(args)

    net.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for image, label in train_loader:
            # [N, 1, 28, 28] -> [N, 784] -> time-last [N, 784, T]
            image = slayer.utils.time.replicate(image.flatten(1), args.T).to(device)
            label = label.to(device)
            optimizer.zero_grad()
            output = net(image)
            loss = error(output, label)
            loss.backward()
            optimizer.step()

            step += 1
            if step % 5 == 0 or step == args.steps:
                acc = (slayer.classifier.Rate.predict(output) == label).float().mean().item()
                print(f"step {step}/{args.steps}  loss {loss.item():.4f}  acc {acc:.3f}")
            if step == args.steps:
                break
    print(f"done: {step} steps in {time.perf_counter() - start:.1f} s, loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
