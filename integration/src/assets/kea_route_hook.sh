#!/bin/sh
# kea-dhcp6 run_script hook of the lab's ISP. A real ISP routes a delegated prefix to the customer's router;
# kea does not, so this adds (and on release or expiry removes) that route. Runs in the ISP's namespace.
log="@LOG@"
case "$1" in
  leases6_committed)
    i=0
    while [ "$i" -lt "${LEASES6_SIZE:-0}" ]; do
      eval "type=\$LEASES6_AT${i}_TYPE prefix=\$LEASES6_AT${i}_ADDRESS length=\$LEASES6_AT${i}_PREFIX_LEN"
      if [ "$type" = IA_PD ]; then
        if ip -6 route replace "$prefix/$length" via "$QUERY6_REMOTE_ADDR" dev "$QUERY6_IFACE_NAME"; then
          echo "route $prefix/$length via $QUERY6_REMOTE_ADDR dev $QUERY6_IFACE_NAME" >> "$log"
        else
          echo "FAILED: route $prefix/$length via $QUERY6_REMOTE_ADDR dev $QUERY6_IFACE_NAME" >> "$log"
        fi
      fi
      i=$((i + 1))
    done
    ;;
  lease6_release|lease6_expire)
    if [ "${LEASE6_TYPE-}" = IA_PD ]; then
      ip -6 route del "$LEASE6_ADDRESS/$LEASE6_PREFIX_LEN" 2>/dev/null && echo "unroute $LEASE6_ADDRESS/$LEASE6_PREFIX_LEN ($1)" >> "$log"
    fi
    ;;
esac
exit 0
