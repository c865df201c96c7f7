// The shim's classes under MySQL Connector/C++ 1.1's names, in namespace sql, for code
// written against Connector/C++ (the headers in cpp-shim/compat/ include this one).
//
// Provided: sql::Connection, Statement, PreparedStatement, ResultSet, SQLException,
// SQLString (std::string), DataType (the type constants setNull accepts), and an unused
// sql::Driver / sql::mysql::MySQL_Driver for members declared but never called. Calls the
// shim does not provide are compile-time errors that name them ("Porting legacy code" in the
// top-level README lists both).
#ifndef VS_SQL_H
#define VS_SQL_H

#include "vs/Cxx11.h"

#include <string>

#include "vs/Connection.h"
#include "vs/PreparedStatement.h"
#include "vs/ResultSet.h"
#include "vs/SQLException.h"
#include "vs/Statement.h"

namespace sql {

using vs::Connection;
using vs::PreparedStatement;
using vs::ResultSet;
using vs::SQLException;
using vs::Statement;

/// Connector/C++'s string type; the shim takes std::string, which it converts from.
typedef std::string SQLString;

/// Connector/C++'s column type constants, accepted (and ignored) by setNull.
struct DataType {
    enum {
        UNKNOWN = 0, BIT, TINYINT, SMALLINT, MEDIUMINT, INTEGER, BIGINT, REAL, DOUBLE, DECIMAL,
        NUMERIC, CHAR, BINARY, VARCHAR, VARBINARY, LONGVARCHAR, LONGVARBINARY, TIMESTAMP, DATE,
        TIME, YEAR, GEOMETRY, ENUM, SET, SQLNULL, JSON
    };
};

/// Connector/C++'s driver. The pool makes every connection (from vs_conf.xml), so legacy
/// code may keep a `Driver *` member but cannot call it: each call is a compile-time error.
class Driver {
public:
    VS_NOT_PROVIDED(connect, "take connections from ConnectionPool::GetConnection (vs_conf.xml)")
    VS_NOT_PROVIDED(threadInit, "the pool's connections need no per-thread set-up")
    VS_NOT_PROVIDED(threadEnd, "the pool's connections need no per-thread set-up")
    VS_NOT_PROVIDED(getName, "there is no driver object behind the pool")
    VS_NOT_PROVIDED(getMajorVersion, "use vs_version() from valuestor.h")
    VS_NOT_PROVIDED(getMinorVersion, "use vs_version() from valuestor.h")

protected:
    Driver() {}
    ~Driver() {}
};

namespace mysql {
/// Connector/C++'s MySQL driver class, as unused as sql::Driver.
class MySQL_Driver : public sql::Driver {
protected:
    MySQL_Driver() {}
    ~MySQL_Driver() {}
};
/// Connector/C++'s MySQL connection class: the shim's Connection.
typedef sql::Connection MySQL_Connection;

/// Not provided: there is no driver to get (any call is a compile-time error naming it).
template <typename... VsArgs>
MySQL_Driver *get_mysql_driver_instance(VsArgs &&...) {
    static_assert(::vs::detail::AlwaysFalse<VsArgs...>::value,
                  "get_mysql_driver_instance() is not provided by the valuestor C++ shim: take "
                  "connections from ConnectionPool::GetConnection (vs_conf.xml)");
    return nullptr;
}
}  // namespace mysql

}  // namespace sql

/// Not provided: there is no driver to get (any call is a compile-time error naming it).
template <typename... VsArgs>
sql::Driver *get_driver_instance(VsArgs &&...) {
    static_assert(::vs::detail::AlwaysFalse<VsArgs...>::value,
                  "get_driver_instance() is not provided by the valuestor C++ shim: take "
                  "connections from ConnectionPool::GetConnection (vs_conf.xml)");
    return nullptr;
}

#endif
