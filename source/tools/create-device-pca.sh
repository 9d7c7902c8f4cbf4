#!/usr/bin/env bash
# Creates one device whose certificate is issued by an AWS Private CA (PCA_ARN, e.g. from the notebooks): an RSA key
# and CSR made locally with openssl, the certificate issued by the Private CA in its own region, then in the region of
# AWS_DEFAULT_REGION (else REGION from toolsrc) the thing, the certificate registered without CA (ACTIVE) and a
# policy, both attached. Writes THING.private.key, THING.public.key, THING.csr and THING.certificate.pem to the current
# directory. Exit codes: 0 created, 1 AWS refused or the device exists, 2 usage.
set -Eeuo pipefail

readonly VALIDITY_DAYS=365

usage() {
    cat <<'USAGE'
usage: create-device-pca.sh THING_NAME [POLICY_NAME]

Environment: PCA_ARN (required) is the ARN of your private CA, arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID;
AWS_DEFAULT_REGION or REGION is where the device is created (the primary region: the solution replicates it).
Without POLICY_NAME the policy THING_NAME_Policy is created: the device may connect with its thing name as client ID
and use the topics dt/THING_NAME/*, cmd/THING_NAME/* and its shadows. A given POLICY_NAME must exist.
USAGE
}

fail() {
    echo "create-device-pca.sh: error: $1" >&2
    exit "${2:-1}"
}

# A refused AWS or openssl call (its own message is on stderr already) ends the script with exit code 1.
on_error() {
    echo "create-device-pca.sh: error: failed: ${BASH_COMMAND}" >&2
    exit 1
}

# The default policy: the device's own client ID, topics and shadows only.
policy_document() {
    local partition="$1" region="$2" account="$3" thing="$4"
    local prefix="arn:${partition}:iot:${region}:${account}"
    jq -cn --arg p "$prefix" --arg t "$thing" '{
        Version: "2012-10-17",
        Statement: [
            {Effect: "Allow", Action: "iot:Connect", Resource: "\($p):client/\($t)"},
            {Effect: "Allow", Action: ["iot:Publish", "iot:Receive"],
             Resource: ["\($p):topic/dt/\($t)/*", "\($p):topic/cmd/\($t)/*", "\($p):topic/$aws/things/\($t)/shadow/*"]},
            {Effect: "Allow", Action: "iot:Subscribe",
             Resource: ["\($p):topicfilter/dt/\($t)/*", "\($p):topicfilter/cmd/\($t)/*",
                        "\($p):topicfilter/$aws/things/\($t)/shadow/*"]}
        ]
    }'
}

main() {
    trap on_error ERR
    case "${1:-}" in
        -h|--help) usage; exit 0 ;;
    esac
    if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
        usage >&2
        fail "expected THING_NAME [POLICY_NAME]" 2
    fi
    local thing="$1" policy="${2:-}"
    [[ "$thing" =~ ^[a-zA-Z0-9:_-]{1,128}$ ]] || fail "invalid thing name $thing: 1 to 128 of a-z A-Z 0-9 : _ -" 2
    local pca_arn="${PCA_ARN:-}"
    [[ "$pca_arn" =~ ^arn:([a-z-]+):acm-pca:([a-z0-9-]+):([0-9]{12}):certificate-authority/[0-9a-f-]+$ ]] \
        || fail "PCA_ARN must be set to the ARN of your private CA (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)" 2
    local partition="${BASH_REMATCH[1]}" pca_region="${BASH_REMATCH[2]}"
    local region="${AWS_DEFAULT_REGION:-${REGION:-}}"
    [ -n "$region" ] || fail "AWS_DEFAULT_REGION or REGION must be set: source toolsrc (. toolsrc)" 2
    local iot=(aws iot --region "$region" --output text)
    local pca=(aws acm-pca --region "$pca_region" --output text)

    if "${iot[@]}" describe-thing --thing-name "$thing" --query thingName >/dev/null 2>&1; then
        fail "thing $thing already exists in $region"
    fi
    local status
    status="$("${pca[@]}" describe-certificate-authority --certificate-authority-arn "$pca_arn" \
        --query CertificateAuthority.Status 2>/dev/null)" || fail "private CA $pca_arn not found in $pca_region"
    [ "$status" = "ACTIVE" ] || fail "private CA $pca_arn is $status, not ACTIVE"
    if [ -n "$policy" ]; then
        "${iot[@]}" get-policy --policy-name "$policy" --query policyName >/dev/null 2>&1 \
            || fail "policy $policy does not exist in $region"
    elif "${iot[@]}" get-policy --policy-name "${thing}_Policy" --query policyName >/dev/null 2>&1; then
        fail "policy ${thing}_Policy already exists in $region: pass it as POLICY_NAME to attach it"
    fi

    umask 077
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$thing" \
        -keyout "$thing.private.key" -out "$thing.csr" 2>/dev/null
    openssl pkey -in "$thing.private.key" -pubout -out "$thing.public.key"
    local certificate_arn
    # The token makes a retry of this script within five minutes get the same certificate, not a second one.
    certificate_arn="$("${pca[@]}" issue-certificate --certificate-authority-arn "$pca_arn" \
        --csr "fileb://$thing.csr" --signing-algorithm SHA256WITHRSA \
        --validity "Value=$VALIDITY_DAYS,Type=DAYS" \
        --idempotency-token "$(printf '%s' "$thing" | sha256sum | cut -c1-32)" --query CertificateArn)"
    "${pca[@]}" wait certificate-issued --certificate-authority-arn "$pca_arn" --certificate-arn "$certificate_arn"
    "${pca[@]}" get-certificate --certificate-authority-arn "$pca_arn" --certificate-arn "$certificate_arn" \
        --query Certificate > "$thing.certificate.pem"

    if [ -z "$policy" ]; then
        policy="${thing}_Policy"
        local account
        account="$(aws sts get-caller-identity --region "$region" --query Account --output text)"
        "${iot[@]}" create-policy --policy-name "$policy" \
            --policy-document "$(policy_document "$partition" "$region" "$account" "$thing")" \
            --query policyName >/dev/null
    fi
    "${iot[@]}" create-thing --thing-name "$thing" --query thingArn >/dev/null
    local iot_certificate_arn
    iot_certificate_arn="$("${iot[@]}" register-certificate-without-ca \
        --certificate-pem "file://$thing.certificate.pem" --status ACTIVE --query certificateArn)"
    "${iot[@]}" attach-policy --policy-name "$policy" --target "$iot_certificate_arn"
    "${iot[@]}" attach-thing-principal --thing-name "$thing" --principal "$iot_certificate_arn"
    echo "created $thing in $region: certificate $iot_certificate_arn (issued by $pca_arn), policy $policy"
    echo "files: $thing.certificate.pem $thing.private.key $thing.public.key $thing.csr"
}

main "$@"
