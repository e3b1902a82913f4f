#!/usr/bin/env bash
# One-time set-up on a fresh machine: system fonts/OCR, a virtualenv, and the package.
# Idempotent: a second run only checks. CPU machines get the CPU torch wheel through constraints.txt;
# GPU users: see README "GPU install".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
fc-list 2>/dev/null | grep -qi "zenhei\|noto sans cjk" || need_apt+=(fonts-wqy-zenhei)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
command -v tesseract >/dev/null || need_apt+=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim)
# the web demo's browser test (tests/test_serve_browser.py) drives Debian's chromium through playwright
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# the reader's font pool (48 Latin families, 4 CJK fonts) and its held-out families (Go, Caladea, Droid Sans
# Fallback), and the English word list of the word-crop renderer (textharmony/data/fonts.py, wordcrops.py)
FONT_PKGS=(fonts-liberation fonts-freefont-ttf fonts-crosextra-carlito fonts-crosextra-caladea fonts-cantarell
  fonts-cabin fonts-comic-neue fonts-courier-prime fonts-dosis fonts-ebgaramond fonts-go fonts-inconsolata
  fonts-lato fonts-open-sans fonts-roboto-unhinted fonts-urw-base35 fonts-linuxlibertine fonts-b612 fonts-hack
  fonts-anonymous-pro fonts-noto-mono fonts-arphic-uming fonts-arphic-ukai fonts-wqy-microhei
  fonts-droid-fallback fonts-quicksand fonts-oxygen fonts-jetbrains-mono wamerican)
[ -f /usr/share/fonts/fonts-go/Go-Regular.ttf ] && [ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] \
  && [ -f /usr/share/fonts/truetype/jetbrains-mono/JetBrainsMono-Regular.ttf ] && [ -f /usr/share/dict/words ] \
  || need_apt+=("${FONT_PKGS[@]}")
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "[setup] warning: missing system packages (${need_apt[*]}); install them with your package manager" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  $PY -m venv .venv
fi
stamp=.venv/.textharmony-installed
want=$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
if [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing dependencies (torch pinned by constraints.txt)"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[eval,train,dev,serve]"
  echo "$want" > $stamp
fi
echo "[setup] ok: $(.venv/bin/python -c 'import torch, transformers, diffusers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "diffusers", diffusers.__version__, "peft", peft.__version__)')"
