#!/bin/sh
# Event script of a lab device running busybox udhcpc: configures the interface as a real device would, then
# records the event for the test (after, so a test that sees "bound" finds the address and route in place).
# Never touches the shared /etc/resolv.conf.
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr replace "$ip/${mask:-24}" dev "$interface"
    for gateway in $router; do
      ip -4 route replace default via "$gateway" dev "$interface"
      break
    done
    ;;
esac
{
  echo "event=$1"
  for var in interface ip subnet mask router dns domain search hostname lease serverid opt58 opt59 message; do
    eval "value=\${$var-}"
    [ -n "$value" ] && echo "$var=$value"
  done
  echo "---"
} >> "@EVENTS@"
exit 0
