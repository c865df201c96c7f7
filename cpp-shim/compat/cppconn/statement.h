// Connector/C++ 1.1's <cppconn/statement.h>, over the valuestor C++ shim: the sql names of
// vs/sql.h. Put cpp-shim/compat first on the include path (see "Porting legacy code" in the
// README).
#ifndef VS_COMPAT_CPPCONN_STATEMENT_H
#define VS_COMPAT_CPPCONN_STATEMENT_H

#include "vs/sql.h"

#endif
