#!/bin/sh
# One-shot, before anything else starts: every secret of the compose setup is made
# here, at run time, into named volumes; none is ever committed.
#   /out/kafka            cluster id, admin and controller passwords, the nodes' SCRAM passwords
#   /out/<node>/secrets   the node's key passphrase, its SCRAM password, its participants' tokens
#   /out/<node>/keys      its participants' private keys and everyone's public keys
#   /out/<node>/config    gateway.yaml rendered from /templates/<node>.yaml (token digests)
#   /out/<node>/data      its audit log, state (replay window, idempotency keys) and its
#                         contracts directory, seeded from the image (registration writes there)
#   /out/kafka-data/*     the brokers' log directories, handed to the Kafka user
# A second run finds the secrets and changes nothing.
set -eu
umask 077
KAFKA_UID=${KAFKA_UID:-1000}        # appuser in the apache/kafka image
GATEWAY_UID=${GATEWAY_UID:-10001}   # gateway in deploy/Dockerfile
OUT=${OUT:-/out}                    # (the tests run this script on a temporary folder)
TEMPLATES=${TEMPLATES:-/templates}
CONTRACTS=${CONTRACTS:-/opt/gateway/contracts}
NODES="node-a node-b"
hosted() {  # keep in step with deploy/compose/node-*.yaml and kafka/provision.sh
    case "$1" in
        node-a) echo "minhealth" ;;
        node-b) echo "socialtreasury acme-analytics" ;;
    esac
}
random() { python -c "import secrets; print(secrets.token_urlsafe(32))"; }

if [ -s "$OUT/kafka/cluster-id" ]; then
    echo "init: secrets exist already; nothing to do"
    exit 0
fi

mkdir -p "$OUT/kafka/users"
random > "$OUT/kafka/admin.password"
random > "$OUT/kafka/controller.password"
python -c "import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22])" \
    > "$OUT/kafka/cluster-id.tmp"

for node in $NODES; do
    mkdir -p "$OUT/$node/secrets/tokens" "$OUT/$node/keys" "$OUT/$node/config" \
        "$OUT/$node/data/audit" "$OUT/$node/data/state"
    cp -R "$CONTRACTS" "$OUT/$node/data/contracts"
    random > "$OUT/$node/secrets/key-passphrase"
    random > "$OUT/$node/secrets/kafka-password"
    cp "$OUT/$node/secrets/kafka-password" "$OUT/kafka/users/$node.password"
    config="$OUT/$node/config/gateway.yaml.tmp"
    cp "$TEMPLATES/$node.yaml" "$config"
    for participant in $(hosted "$node"); do
        gateway keys generate --participant "$participant" --out "$OUT/$node/keys" \
            --passphrase-file "$OUT/$node/secrets/key-passphrase"
        answer=$(gateway token new --participant "$participant")
        echo "$answer" | sed -n 2p | tr -d ' ' > "$OUT/$node/secrets/tokens/$participant.token"
        digest=$(echo "$answer" | sed -n 4p | tr -d ' ')
        marker=$(echo "$participant" | tr 'a-z.-' 'A-Z__')
        sed -i "s/@${marker}_TOKEN_SHA256@/${digest}/" "$config"
    done
    if grep -q '@[A-Z_]*_TOKEN_SHA256@' "$config"; then
        echo "init: $TEMPLATES/$node.yaml names a participant that $node does not host" >&2
        exit 1
    fi
done

# Every node verifies every sender and encrypts to every recipient: share public keys.
for node in $NODES; do
    for other in $NODES; do
        [ "$node" = "$other" ] || cp "$OUT/$other/keys/"*.public.jwks.json "$OUT/$node/keys/"
    done
    mv "$OUT/$node/config/gateway.yaml.tmp" "$OUT/$node/config/gateway.yaml"
    chmod 0644 "$OUT/$node/config/gateway.yaml"
    chown -R "$GATEWAY_UID:$GATEWAY_UID" "$OUT/$node/secrets" "$OUT/$node/keys" "$OUT/$node/data"
done
chown -R "$KAFKA_UID:$KAFKA_UID" "$OUT/kafka" "$OUT/kafka-data"
mv "$OUT/kafka/cluster-id.tmp" "$OUT/kafka/cluster-id"   # last: marks the work as done
echo "init: secrets generated; each node's tokens are in its /run/gateway/tokens/"
