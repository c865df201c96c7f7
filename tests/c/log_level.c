/* The C ABI's log on stderr: once a pool is open, the library's warnings (here: an unknown
 * key in a config loaded afterwards) are written to stderr at the level RUST_LOG sets.
 * argv: a config for the pool (its server need not run), a config with an unknown key. */
#include <stdio.h>

#include "check.h"
#include "valuestor.h"

int main(int argc, char **argv) {
    VsConfig *config = NULL;
    VsConfig *other = NULL;
    VsPool *pool = NULL;
    CHECK(argc == 3);
    CHECK_OK(vs_config_load(argv[1], &config));
    CHECK_OK(vs_pool_open(config, &pool));
    CHECK_OK(vs_config_load(argv[2], &other));
    vs_config_free(other);
    vs_pool_free(pool);
    vs_config_free(config);
    printf("log_level ok\n");
    return 0;
}
