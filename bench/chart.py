"""Draws benchmarks.png from the JSON `ecrmirror-bench` writes: each method's median time
as a ratio to the seed module's loop, per image."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = json.load(open(sys.argv[1]))
out = sys.argv[2]
images = list(results.keys())
methods = list(results[images[0]].keys())
fig, axes = plt.subplots(1, len(images), figsize=(5 * len(images), 4), squeeze=False)
for ax, image in zip(axes[0], images):
    base = results[image]["seed loop"]
    ratios = [results[image][m] / base for m in methods]
    bars = ax.bar(methods, ratios, color=["#888888", "#1f77b4", "#2ca02c", "#d62728"][: len(methods)])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_title(f"{image}: median time / seed loop")
    ax.set_ylabel("ratio (lower is faster)")
    for bar, ratio in zip(bars, ratios):
        ax.text(bar.get_x() + bar.get_width() / 2, ratio, f"{ratio:.2f}", ha="center", va="bottom")
    ax.tick_params(axis="x", rotation=20)
fig.tight_layout()
fig.savefig(out, dpi=100)
