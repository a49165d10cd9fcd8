#!/bin/sh
# Optional: Debian's PyTorch + multithreaded OpenBLAS, for the PyTorch column of `npm run bench`
# (bench/torch_baseline.py). Idempotent: installs only what is missing, then makes sure libblas.so.3 and
# liblapack.so.3 resolve to OpenBLAS (pthread build) rather than the reference BLAS, which is ~30x slower.
# Debian 12 (bookworm) / Ubuntu; needs root (or sudo). Run the baseline with /usr/bin/python3.
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS="python3-torch libopenblas0-pthread"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y $missing
else
  echo "already installed: $PKGS"
fi

# libopenblas0-pthread registers itself (priority 100) for libblas.so.3/liblapack.so.3; the reference BLAS
# (libblas3, priority 10) wins only if the alternative was pinned by hand. Re-point it if so.
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  name="$lib-$triplet"
  want="/usr/lib/$triplet/openblas-pthread/$lib"
  cur=$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')
  if [ "$cur" != "$want" ]; then
    echo "pointing $name to $want (was: ${cur:-unset})"
    $SUDO update-alternatives --set "$name" "$want"
  else
    echo "$name -> $want"
  fi
done

/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)'
echo "check: /usr/bin/python3 bench/torch_baseline.py --selfcheck"
