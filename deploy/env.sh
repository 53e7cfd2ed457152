# Sourced by every command cluster.yaml / cluster-local.yaml run on a node, and by an operator
# on the head (`. ~/talix/deploy/env.sh`): the settings, the installed tools, Ray's token auth.
set -a
. "$HOME/talix/deploy/cluster.env"
set +a
export PATH="$HOME/talix-venv/bin:$HOME/.local/bin:$PATH"
export RAY_AUTH_MODE=token                                  # every Ray endpoint wants the token
export RAY_AUTH_TOKEN_PATH="$HOME/talix/deploy/secrets/ray_token"  # mode 0600
export TALIX_API_KEYS_FILE="$HOME/talix/deploy/secrets/api_keys.json"
export RAY_USAGE_STATS_ENABLED=0
