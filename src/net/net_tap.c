/* --net tap=NAME: not built yet; refused before KVM is touched. */
#include <errno.h>
#include <net/if.h>

#include "petrel/net.h"

int net_tap_create(const struct net_spec *spec, struct net_backend **be, struct errbuf *eb)
{
    *be = NULL;
    if (!if_nametoindex(spec->tap))
        return err_set(eb, -ENODEV, "--net tap=%s: there is no such network device", spec->tap);
    return err_set(eb, -ENOTSUP, "--net tap=%s: tap networking is not supported yet", spec->tap);
}
