#!/usr/bin/env bash
# System packages some tests use: Chromium for the browser test, and Fashion-MNIST, a real
# data set in the MNIST layout; and the handwriting fonts the offline sample writes with.
# Installed with apt when missing and we are root; otherwise the tests that need them are
# skipped with a reason (under CI a missing browser fails), and the sample uses what it finds.
set -u
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
for pair in fonts-dkg-handwriting:dkg.ttf fonts-breip:Breip.ttf fonts-bwht:BecauseWeBuild-Regular.otf \
            fonts-femkeklaver:femkeklaver.ttf fonts-humor-sans:Humor-Sans.ttf fonts-klee:KleeOne-Regular.ttf \
            fonts-rufscript:Rufscript010.ttf fonts-sjfonts:SteveHand.ttf fonts-comic-neue:ComicNeue-Regular.otf; do
    [ -n "$(find /usr/share/fonts -name "${pair#*:}" -print -quit 2>/dev/null)" ] || need+=("${pair%%:*}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-deps: not root or no apt-get; not installing: ${need[*]}" >&2
    exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null; }
