"""A small convolutional SNN trained with SpikingJelly (activation_based, multi-step mode).

Written the way SpikingJelly's own Fashion-MNIST example (conv_fashion_mnist.py) writes it:
layer.Conv2d/BatchNorm2d/MaxPool2d and neuron.LIFNode in step_mode='m', the static image
repeated over T, firing rates against one-hot labels (MSE), functional.reset_net every step.

    python examples/spikingjelly_cnn.py --steps 20
    kernelprof profile -- python examples/spikingjelly_cnn.py
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch.utils.data import DataLoader, TensorDataset


class CSNN(nn.Module):
    def __init__(self, T: int, channels: int = 16):
        super().__init__()
        self.T = T
        self.conv_fc = nn.Sequential(
            layer.Conv2d(1, channels, kernel_size=3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
            layer.MaxPool2d(2, 2),  # 14 * 14
            layer.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            layer.BatchNorm2d(channels),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
            layer.MaxPool2d(2, 2),  # 7 * 7
            layer.Flatten(),
            layer.Linear(channels * 7 * 7, 10, bias=False),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
        )
        functional.set_step_mode(self, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)  # [N, C, H, W] -> [T, N, C, H, W]
        return self.conv_fc(x_seq).mean(0)  # firing rate of the output layer


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
    net = CSNN(T=args.T).to(args.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    train_loader = load_data(args)

    net.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for img, label in train_loader:
            img, label = img.to(args.device), label.to(args.device)
            optimizer.zero_grad()
            out_fr = net(img)
            loss = F.mse_loss(out_fr, F.one_hot(label, 10).float())
            loss.backward()
            optimizer.step()
            functional.reset_net(net)

            step += 1
            if step % 5 == 0 or step == args.steps:
                acc = (out_fr.argmax(1) == label).float().mean().item()
                print(f"step {step}/{args.steps}  loss {loss.item():.4f}  acc {acc:.3f}")
            if step == args.steps:
                break
    print(f"done: {step} steps in {time.perf_counter() - start:.1f} s, loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
