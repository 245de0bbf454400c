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
