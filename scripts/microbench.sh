#!/usr/bin/env bash
# Micro-benchmarks of the pure core's hot paths (criterion, benches/hot_paths.rs): RTMP chunk
# decode/encode, HLS TS muxing and segmenting, DASH fMP4 fragments; throughput in media bytes.
# Usage: scripts/microbench.sh [criterion args], e.g. scripts/microbench.sh ts_mux --measurement-time 5
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo bench --no-default-features --bench hot_paths -- "$@"
