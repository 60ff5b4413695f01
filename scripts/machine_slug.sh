#!/usr/bin/env bash
# machine_slug.sh -- the results folder name of this machine: a readable slug of
# the first GPU's name ("NVIDIA H100 80GB HBM3" -> h100-80gb-hbm3), or "cpu"
# when no GPU answers nvidia-smi.
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
if [ -z "$name" ]; then echo cpu; exit 0; fi
echo "$name" | tr 'A-Z' 'a-z' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/^-//' -e 's/-$//'
