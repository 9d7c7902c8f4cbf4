#!/usr/bin/env bash
# Creates one device in the region of AWS_DEFAULT_REGION (else REGION from toolsrc): a thing, a certificate and key
# pair from AWS IoT, and a policy attached to the certificate. Writes THING.certificate.pem, THING.private.key and
# THING.public.key to the current directory. Exit codes: 0 created, 1 AWS refused or was unreachable (the AWS CLI's
# own codes, such as 255, are mapped to 1) or the device exists, 2 usage (also a malformed region, checked first).
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly TOOLS_DIR

usage() {
    cat <<'USAGE'
usage: create-device.sh [--type THING_TYPE] [--attributes KEY=VALUE[,KEY=VALUE...]] THING_NAME [POLICY_NAME]

Without POLICY_NAME the policy THING_NAME_Policy is created from sample-pol1.json (next to this script, or
$SAMPLE_POLICY), with AWS_REGION and AWS_ACCOUNT_ID replaced. A given POLICY_NAME must exist. Create devices in the
primary region: the solution replicates them to the secondary.
USAGE
}

fail() {
    echo "create-device.sh: error: $1" >&2
    exit "${2:-1}"
}

# The AWS CLI exits 255 (or 254, 253) when a call fails or the endpoint is unreachable: that is our 1.
aws_failed_is_failure() {
    local code=$?
    if [ "$code" -gt 2 ]; then
        echo "create-device.sh: error: an AWS CLI call failed (exit code $code; its message is above)" >&2
        exit 1
    fi
}
trap aws_failed_is_failure EXIT

attribute_payload() {
    # KEY=VALUE,KEY=VALUE -> {"attributes": {"KEY": "VALUE", ...}}
    jq -cn --arg pairs "$1" '{attributes: ($pairs | split(",") | map(split("=") | {(.[0]): (.[1:] | join("="))}) | add)}'
}

main() {
    local thing_type="" attributes=""
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --type) [ "$#" -ge 2 ] || fail "--type needs a value" 2; thing_type="$2"; shift 2 ;;
            --attributes) [ "$#" -ge 2 ] || fail "--attributes needs a value" 2; attributes="$2"; shift 2 ;;
            -h|--help) usage; exit 0 ;;
            -*) usage >&2; fail "unknown option $1" 2 ;;
            *) break ;;
        esac
    done
    if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
        usage >&2
        fail "expected THING_NAME [POLICY_NAME]" 2
    fi
    local thing="$1" policy="${2:-}"
    local region="${AWS_DEFAULT_REGION:-${REGION:-}}"
    [ -n "$region" ] || fail "AWS_DEFAULT_REGION or REGION must be set: source toolsrc (. toolsrc)" 2
    # The shape of an AWS region code (as iot_dr_cli.arguments.region): a typo is a usage error, not a timeout.
    [[ "$region" =~ ^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$ ]] || fail "$region is not an AWS region code such as us-east-1" 2
    local template="${SAMPLE_POLICY:-$TOOLS_DIR/sample-pol1.json}"
    [ -n "$policy" ] || [ -r "$template" ] || fail "policy template not found: $template" 2
    local iot=(aws iot --region "$region" --output text)

    if "${iot[@]}" describe-thing --thing-name "$thing" --query thingName >/dev/null 2>&1; then
        fail "thing $thing already exists in $region"
    fi
    if [ -n "$thing_type" ] && ! "${iot[@]}" describe-thing-type --thing-type-name "$thing_type" \
        --query thingTypeName >/dev/null 2>&1; then
        fail "thing type $thing_type does not exist in $region: create it first (aws iot create-thing-type --thing-type-name $thing_type)"
    fi
    if [ -n "$policy" ]; then
        "${iot[@]}" get-policy --policy-name "$policy" --query policyName >/dev/null 2>&1 \
            || fail "policy $policy does not exist in $region"
    else
        policy="${thing}_Policy"
        local account
        account="$(aws sts get-caller-identity --region "$region" --query Account --output text)"
        "${iot[@]}" create-policy --policy-name "$policy" \
            --policy-document "$(sed -e "s/AWS_REGION/$region/g" -e "s/AWS_ACCOUNT_ID/$account/g" "$template")" \
            --query policyName >/dev/null
    fi

    local create=(create-thing --thing-name "$thing")
    [ -z "$thing_type" ] || create+=(--thing-type-name "$thing_type")
    [ -z "$attributes" ] || create+=(--attribute-payload "$(attribute_payload "$attributes")")
    "${iot[@]}" "${create[@]}" --query thingArn >/dev/null

    umask 077
    local certificate_arn
    certificate_arn="$("${iot[@]}" create-keys-and-certificate --set-as-active \
        --certificate-pem-outfile "$thing.certificate.pem" \
        --public-key-outfile "$thing.public.key" \
        --private-key-outfile "$thing.private.key" \
        --query certificateArn)"
    "${iot[@]}" attach-policy --policy-name "$policy" --target "$certificate_arn"
    "${iot[@]}" attach-thing-principal --thing-name "$thing" --principal "$certificate_arn"
    echo "created $thing in $region: certificate $certificate_arn, policy $policy"
    echo "files: $thing.certificate.pem $thing.private.key $thing.public.key"
}

main "$@"
