// What the legacy ConnectionPool.h gave its includers, over the valuestor C++ shim: the
// Connector/C++ sql names, visible unqualified (`using namespace sql`, as the legacy header
// did), and a global ConnectionPool with the legacy members:
//
//     ConnectionPool(int maxSize = 40);       // legacy semantics, never throws
//     virtual ~ConnectionPool();
//     Connection *GetConnection();            // throws sql::SQLException, never NULL
//     void ReleaseConnection(Connection *);   // NULL is ignored
//
// Porting: the legacy ConnectionPool.h becomes `#include <vs/legacy/ConnectionPool.h>` plus
// the project's own other includes (stdafx.h), ConnectionPool.cpp is deleted, and the link
// adds libvsshim.a and libvaluestor.a. See "Porting legacy code" in the README.
#ifndef VS_LEGACY_CONNECTIONPOOL_H
#define VS_LEGACY_CONNECTIONPOOL_H

#include <cppconn/driver.h>
#include <cppconn/exception.h>
#include <cppconn/metadata.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <mysql_connection.h>
#include <mysql_driver.h>

#include "vs/ConnectionPool.h"

// The legacy header put the sql names in the global scope; its includers rely on that. (The
// shim's own headers never do this; only this compatibility header does.)
using namespace sql;

/// The legacy pool: vs::ConnectionPool's legacy constructor under the legacy class name.
class ConnectionPool : public vs::ConnectionPool {
public:
    /// Opens the pool with the legacy semantics (see vs::ConnectionPool(int)); never throws.
    ConnectionPool(int maxSize = 40) : vs::ConnectionPool(maxSize) {}  // NOLINT: implicit, as legacy
    virtual ~ConnectionPool() {}
};

#endif
