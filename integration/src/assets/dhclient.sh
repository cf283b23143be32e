#!/bin/sh
# Event script of a lab device running ISC dhclient (-sf): configures the interface as a real device would, then
# records the event for the test (after, so a test that sees an event finds its configuration in place).
# Never touches the shared /etc/resolv.conf.
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "${old_ip_address-}" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
      ip -4 addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    for gateway in $new_routers; do
      ip -4 route replace default via "$gateway" dev "$interface"
      break
    done
    ;;
  EXPIRE|FAIL|RELEASE|STOP)
    [ -n "${old_ip_address-}" ] && ip -4 addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    ;;
  BOUND6|RENEW6|REBIND6|REBOOT6)
    [ -n "${new_ip6_address-}" ] && ip -6 addr replace "$new_ip6_address/${new_ip6_prefixlen:-128}" dev "$interface" nodad
    ;;
esac
{
  echo "event=$reason"
  env | grep -E '^(interface|new_[a-z0-9_]+|old_ip_address|old_ip6_prefix)=' | sort
  echo "---"
} >> "@EVENTS@"
exit 0
