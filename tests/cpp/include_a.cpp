// Two translation units include the whole shim (twice here): no ODR clashes.
#include <vs/ConnectionPool.h>
#include <vs/ConnectionPool.h>
#include "valuestor.h"

int otherUnit();

int main() { return (otherUnit() == VS_ABI_VERSION && vs_abi_version() == VS_ABI_VERSION) ? 0 : 1; }
