#!/usr/bin/env bash
# Download the wheels a GPU machine without network access may lack into .whl/
# (ignored by git: never commit wheels). benchmarks/gpu_session.sh installs those
# whose module does not import there.
#
#   bash benchmarks/gpu_wheels.sh           # from the repository root, where pip works
#
# The versions are those the test suite runs with here; the platform tags are those of
# an x86-64 Linux machine with CPython 3.12 (safetensors and hypothesis ship compiled or
# tagged wheels, the rest are pure Python).
set -eu -o pipefail
git check-ignore -q .whl/x || { echo "gpu_wheels: .whl/ is not ignored by git here" >&2; exit 2; }
mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  array-api-compat==1.16.0 array-api-strict==2.6.1 safetensors==0.8.0 rich==15.0.0 \
  markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0 threadpoolctl==3.8.0 pytest==9.2.0 \
  hypothesis==6.170.17
ls -l .whl
