"""A small convolutional SNN trained with Sinabs (BPTT), as its training tutorials write it.

A hand-written nn.Sequential of torch layers and sinabs.layers.IAFSqueeze, which takes batch
and time squeezed into one axis ([N*T, C, H, W]); the static image repeated over T, a
non-spiking linear readout (what sinabs.from_model gives by default, add_spiking_output=False)
summed over time as logits for cross-entropy, and sinabs.reset_states before each batch.

    python examples/sinabs_cnn.py --steps 20
    kernelprof profile -- python examples/sinabs_cnn.py
"""

import argparse
import time

import sinabs
import sinabs.layers as sl
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def build_snn(num_timesteps: int, channels: int = 8) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1, bias=False),
        sl.IAFSqueeze(num_timesteps=num_timesteps, min_v_mem=-1.0),
        nn.AvgPool2d(2),  # 14 * 14
        nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1, bias=False),
        sl.IAFSqueeze(num_timesteps=num_timesteps, min_v_mem=-1.0),
        nn.AvgPool2d(2),  # 7 * 7
        nn.Flatten(),
        nn.Linear(2 * channels * 7 * 7, 10, bias=False),  # non-spiking readout
    )


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
    snn = build_snn(num_timesteps=args.T).to(device)
    optimizer = torch.optim.Adam(snn.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()
    train_loader = load_data(args)

    snn.train()
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for data, label in train_loader:
            data, label = data.to(device), label.to(device)
            batch_size = data.shape[0]
            # [N, C, H, W] -> [N, T, C, H, W] -> [N*T, C, H, W]
            data = data.unsqueeze(1).repeat(1, args.T, 1, 1, 1).flatten(0, 1)
            sinabs.reset_states(snn)
            optimizer.zero_grad()
            output = snn(data).reshape(batch_size, args.T, -1).sum(1)  # summed over time
            loss = criterion(output, label)
            loss.backward()
            optimizer.step()

            step += 1
            if step % 5 == 0 or step == args.steps:
                acc = (output.argmax(1) == label).float().mean().item()
                print(f"step {step}/{args.steps}  loss {loss.item():.4f}  acc {acc:.3f}")
            if step == args.steps:
                break
    print(f"done: {step} steps in {time.perf_counter() - start:.1f} s, loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
