#!/usr/bin/env bash
# System packages the GUI tests need: an X server (Xvfb) for the example apps' real-window
# tests, and the shared libraries the GUI toolkits load. Shared by the Qt and Kivy bindings:
# append your packages in your own section, keep it idempotent and quiet.
#
# Idempotent: only packages that are not installed yet are asked for, and apt-get update
# runs only when something is missing. Without root (or without apt-get) it installs
# nothing and says so; the tests then skip what cannot run, except in CI (CI=true).
set -euo pipefail

want=()

# -- Qt (PySide6): what the xcb platform plugin, QtGui and QtNetwork link against --------
# Found with ldd on PySide6's libqxcb.so and libQt6{Gui,Widgets,Network,Core,DBus,OpenGL,XcbQpa}
# on Debian 12, keeping the packages that a minimal image lacks; the rest (libxcb-render0,
# libxcb-xkb1, libxcb-util1, ...) come in as their dependencies.
want+=(
    xvfb xfonts-base xauth
    libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
    libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
    libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
    libx11-xcb1
)

# -- Kivy: append below ------------------------------------------------------------------
# The Kivy wheel bundles SDL2, which dlopens the X11 client libraries and libGL at run time:
# libsdl2-2.0-0 brings exactly that set (libxcursor, libxi, libxrandr, libxss, ...);
# libgl1-mesa-dri is the software OpenGL (llvmpipe) Xvfb renders with; libmtdev1 is loaded
# by Kivy's input providers on Linux.
want+=(xvfb libgl1 libgl1-mesa-dri libmtdev1 libsdl2-2.0-0)

install_missing() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "install-gui: not root or no apt-get; skipping (GUI tests may skip)" >&2
        return 0
    fi
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "install-gui: system packages present"
        return 0
    fi
    echo "install-gui: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # With recommends, as the tests were proven: Xvfb needs xfonts-base (its "fixed" font).
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_missing "${want[@]}"
