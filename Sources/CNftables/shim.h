#ifndef FWENFORCER_CNFTABLES_SHIM_H
#define FWENFORCER_CNFTABLES_SHIM_H
#include <stdint.h>
/* glibc's <netinet/in.h> before any <linux/...> header: linux/libc-compat.h then leaves in_addr and
 * friends to glibc, so Swift files importing both Glibc and CNftables see one definition. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/set.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/udata.h>
#endif
