#!/usr/bin/env bash
# Installs what building, running and testing Partyline needs on Debian, idempotently:
# Debian packages (only the missing ones), and cargo-fuzz for the fuzz smoke run.
set -euo pipefail

if ! command -v cargo >/dev/null; then
  echo "setup: Rust is missing; install it with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi

# Build: C toolchain and linker (see .cargo/config.toml), audio/input/display headers for the
# voice and overlay stack, the system Opus. Run: PulseAudio's ALSA plugin so the default ALSA
# device reaches PulseAudio where it runs. Tests: iproute2 and nftables for network namespaces,
# espeak-ng and sox for test speech, PulseAudio for virtual audio devices; Xvfb and Mesa's software
# Vulkan (lavapipe) for the overlay's real-window tests, and three window managers it is
# tried under; python3 as a client of another user for the local socket's test; Chromium and its
# WebDriver for the companion page's tests in a real browser.
PACKAGES=(
  pkg-config cmake clang lld
  libasound2-dev libudev-dev libwayland-dev libxkbcommon-dev libdbus-1-dev libopus-dev
  libasound2-plugins
  iproute2 nftables procps
  espeak-ng sox pulseaudio pulseaudio-utils
  xvfb xdotool mesa-vulkan-drivers libvulkan1 libx11-dev libxcursor-dev libxrandr-dev libxi-dev
  openbox fluxbox icewm python3-minimal
  chromium chromium-driver
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Plugins are WebAssembly components built for wasm32-wasip2 (app/build.rs builds them).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target" >&2
  rustup target add wasm32-wasip2
fi

if [[ "${1:-}" == "--test" ]] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz" >&2
  cargo install --locked --quiet cargo-fuzz
fi
