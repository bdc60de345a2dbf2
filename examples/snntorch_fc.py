"""A fully connected SNN trained with snnTorch, in the style of its tutorial 5.

nn.Linear + snn.Leaky, a Python loop over the time steps inside forward (membranes initialised
with reset_mem()), the static image fed at every step, and snntorch.functional.ce_rate_loss on
the output spikes.

    python examples/snntorch_fc.py --steps 20
    kernelprof profile -- python examples/snntorch_fc.py
"""

import argparse
import time

import snntorch as snn
import snntorch.functional as SF
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, num_steps: int, num_inputs=784, num_hidden=1000, num_outputs=10, beta=0.95):
        super().__init__()
        self.num_steps = num_steps
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.reset_mem()
        mem2 = self.lif2.reset_mem()
        spk2_rec, mem2_rec = [], []
        for _ in range(self.num_steps):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


def load_data(args) -> DataLoader:
    if args.data == "mnist":
        from torchvision import datasets, transforms

        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0,), (1,))])
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
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--T", type=int, default=8, help="simulation time steps")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", choices=["synthetic", "mnist"], default="synthetic")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    net = Net(num_steps=args.T).to(device)
    loss_fn = SF.ce_rate_loss()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999))
    train_loader = load_data(args)

    step, start = 0, time.perf_counter()
    while step < args.steps:
        for data, targets in train_loader:
            data, targets = data.to(device), targets.to(device)
            net.train()
            optimizer.zero_grad()
            spk_rec, mem_rec = net(data.view(data.size(0), -1))
            loss_val = loss_fn(spk_rec, targets)
            loss_val.backward()
            optimizer.step()

            step += 1
            if step % 5 == 0 or step == args.steps:
                acc = SF.accuracy_rate(spk_rec, targets)
                print(f"step {step}/{args.steps}  loss {loss_val.item():.4f}  acc {acc:.3f}")
            if step == args.steps:
                break
    print(f"done: {step} steps in {time.perf_counter() - start:.1f} s, loss {loss_val.item():.4f}")


if __name__ == "__main__":
    main()
