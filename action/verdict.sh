#!/usr/bin/env bash
# The action's last step: fail the job when keywarden could not scan, or found
# secrets and fail-on-findings is true.
set -u
case "${EXIT_CODE:-}" in
  0) echo "keywarden: no secrets found" ;;
  1)
    if [ "${FAIL_ON_FINDINGS:-true}" = true ]; then
      echo "::error title=keywarden::${FINDINGS:-some} secret(s) found: see the annotations, the job summary and code scanning."
      exit 1
    fi
    echo "keywarden: ${FINDINGS:-some} secret(s) found (fail-on-findings is false)"
    ;;
  *)
    echo "::error title=keywarden::the scan did not complete (exit status ${EXIT_CODE:-unknown}); see the scan step's log."
    exit 1
    ;;
esac
