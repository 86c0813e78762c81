# Shared by scripts/ci_pipeline.sh and scripts/slurm_ci.sh (sourced; needs $root).

# copy_checkout DEST: the tracked and untracked-but-not-ignored files of this checkout (what a fresh
# clone has, plus uncommitted edits), with config/ci.yaml as DEST's config/config.yaml.
copy_checkout() {
  mkdir -p "$1"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$1"
  cp "$root/config/ci.yaml" "$1/config/config.yaml"
}
