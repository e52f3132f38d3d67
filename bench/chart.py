"""Draws benchmarks.png from the JSON `ecrmirror-bench` writes: each method's median time
per image, as a ratio to the seed module's loop (top row) and to skopeo (bottom row)."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METHODS = ["seed loop", "terraform docker", "terraform registry", "skopeo"]
COLORS = ["#888888", "#1f77b4", "#2ca02c", "#d62728"]
UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def size(label):
    """Bytes in a label such as '5 layers, 40 MiB'."""
    amount, unit = label.split(", ")[-1].split()
    return float(amount) * UNITS.get(unit, 1)


results = json.load(open(sys.argv[1]))
out = sys.argv[2]
images = sorted(results, key=size)
fig, axes = plt.subplots(2, len(images), figsize=(5 * len(images), 8), squeeze=False)
for row, base_method in enumerate(["seed loop", "skopeo"]):
    for ax, image in zip(axes[row], images):
        methods = [m for m in METHODS if m in results[image]]
        base = results[image][base_method]
        ratios = [results[image][m] / base for m in methods]
        bars = ax.bar(methods, ratios, color=COLORS[: len(methods)])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(f"{image}: median / {base_method}")
        ax.set_ylabel("ratio (lower is faster)")
        for bar, ratio in zip(bars, ratios):
            ax.text(bar.get_x() + bar.get_width() / 2, ratio, f"{ratio:.2f}", ha="center", va="bottom")
        ax.tick_params(axis="x", rotation=20)
fig.tight_layout()
fig.savefig(out, dpi=100)
