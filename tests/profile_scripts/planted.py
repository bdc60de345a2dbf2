"""A training script with a planted slow layer and a layer called T times a step, for the tests
of `kernelprof profile` (it refers to nothing of kernelprof unless --mark-steps).

    python tests/profile_scripts/planted.py --sleep-ms 30 --T 6 --steps 40
"""

import argparse
import sys
import time

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--sleep-ms", type=float, default=30.0)
parser.add_argument("--T", type=int, default=6)
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--fail-at", type=int, default=None, help="raise in this step")
parser.add_argument(
    "--mark-steps", action="store_true", help="no optimizer: kernelprof.step() ends each step"
)
args = parser.parse_args()


class Sleep(nn.Module):
    """The planted slow layer: sleeps in its forward, does nothing else."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


class Net(nn.Module):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.encoder = nn.Linear(64, 256)
        self.recurrent = nn.Linear(256, 256)  # called T times a step
        self.slow = Sleep(args.sleep_ms / 1e3)
        self.head = nn.Linear(256, 10)

    def forward(self, x):
        h = torch.relu(self.encoder(x))
        for _ in range(self.steps):
            h = torch.tanh(self.recurrent(h))
        return self.head(self.slow(h))


torch.manual_seed(0)
model = Net(args.T)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
data = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(torch.randn(64 * 32, 64), torch.randint(0, 10, (64 * 32,))),
    batch_size=32,
)
step = 0
while step < args.steps:
    for x, y in data:
        if step == args.fail_at:
            raise RuntimeError(f"planted failure in step {step}")
        x, y = x.to("cpu"), y.to("cpu")
        loss = nn.functional.cross_entropy(model(x), y)
        if args.mark_steps:
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter -= 0.01 * parameter.grad
            import kernelprof

            kernelprof.step()
        else:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        step += 1
        if step == args.steps:
            break
print(f"trained {step} steps, loss {loss.item():.3f}", file=sys.stderr)
