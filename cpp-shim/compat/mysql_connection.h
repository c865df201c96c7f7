// Connector/C++ 1.1's <mysql_connection.h>, over the valuestor C++ shim: the sql names of vs/sql.h
// (sql::mysql::MySQL_Driver is declared but cannot be used). Put cpp-shim/compat first on the
// include path (see "Porting legacy code" in the README).
#ifndef VS_COMPAT_MYSQL_CONNECTION_H
#define VS_COMPAT_MYSQL_CONNECTION_H

#include "vs/sql.h"

#endif
