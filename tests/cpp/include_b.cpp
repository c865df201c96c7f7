#include <vs/ResultSet.h>
#include <vs/ConnectionPool.h>

int otherUnit() { return VS_ABI_VERSION; }
