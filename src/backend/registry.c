#include <string.h>

#include "backend/backend.h"

static const nep_backend *const backends[] = {&nep_backend_cpu, &nep_backend_ref};

const nep_backend *nep_backend_named(const char *name) {
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
        if (!strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}
