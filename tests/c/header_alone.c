/* The header compiles on its own, twice (include guard), in C11. */
#include "valuestor.h"
#include "valuestor.h"

int main(void) { return vs_abi_version() == VS_ABI_VERSION ? 0 : 1; }
