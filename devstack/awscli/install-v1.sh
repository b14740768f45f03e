#!/usr/bin/env bash
# Installs a pinned AWS CLI v1 into .devstack/awscli-v1 (or the directory
# given as $1), so the dev env tests can check `eval "$(streamscore dev env)"`
# with a v1 CLI as well as Debian's v2 (/usr/bin/aws). Does nothing when the
# pinned version is already there.
#
# PyPI may not be reachable, so the CLI comes from the npm registry: the AWS
# CDK's @aws-cdk/asset-awscli-v1 package ships a self-contained
# `pip install awscli -t` tree (awscli 1.46.2 with its own botocore, built for
# CPython 3.11) as lib/layer.zip. Needs npm and python3 (3.11 is Debian 12's).
set -euo pipefail

pkg=@aws-cdk/asset-awscli-v1
version=2.2.296 # awscli 1.46.2
integrity=sha512-Er+f1t5DTFy/8jK9IId0WTf9JgtRUdHJ3MegQcCgBQ8Dk7xSM7cNAOhhvbc9IiLF79C2vrbbUqhrBT/pZn5boQ==

root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$root/.devstack/awscli-v1}
mkdir -p "$(dirname "$dest")"
dest=$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")

if [[ -x $dest/bin/aws && $(cat "$dest/.pin" 2>/dev/null) == "$pkg@$version" ]]; then
	exit 0
fi

python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3) || {
	echo "install-v1.sh: python3 is required (Debian: apt-get install python3)" >&2
	exit 1
}
command -v npm >/dev/null || {
	echo "install-v1.sh: npm is required" >&2
	exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "installing AWS CLI v1 ($pkg@$version) into $dest"
(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
tgz=("$tmp"/*.tgz)
got=$("$python" -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "${tgz[0]}")
if [[ $got != "$integrity" ]]; then
	echo "install-v1.sh: $pkg@$version has integrity $got, want $integrity" >&2
	exit 1
fi
tar -xzf "${tgz[0]}" -C "$tmp" package/lib/layer.zip
rm -rf "$dest.new"
mkdir -p "$dest.new/bin"
"$python" -m zipfile -e "$tmp/package/lib/layer.zip" "$dest.new"
# The layer's own `aws` script names Lambda's interpreter; run it with ours.
# Its directory comes first on sys.path, so its botocore wins over any other.
cat >"$dest.new/bin/aws" <<EOF
#!/bin/sh
exec "$python" "$dest/awscli/aws" "\$@"
EOF
chmod +x "$dest.new/bin/aws"
echo "$pkg@$version" >"$dest.new/.pin"
rm -rf "$dest"
mv "$dest.new" "$dest"
"$dest/bin/aws" --version
