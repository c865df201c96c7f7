// vs::SQLException: what every shim call throws on failure.
#ifndef VS_SQLEXCEPTION_H
#define VS_SQLEXCEPTION_H

#include "vs/Cxx11.h"

#include <stdexcept>
#include <string>
#include <utility>

#include "valuestor.h"

namespace vs {

/// A failed database or pool operation, like sql::SQLException in Connector/C++.
///
/// A timeout or an unreachable database carries the server's reason for refusing
/// connections: getErrorCode() 1045 (access denied), 1049 (unknown database) or 2003 (cannot
/// connect), with its SQLSTATE.
class SQLException : public std::runtime_error {
public:
    SQLException(const std::string &message, int errorCode, std::string sqlState, VsStatus status)
        : std::runtime_error(message), errorCode_(errorCode), sqlState_(std::move(sqlState)),
          status_(status) {}
    /// Connector/C++'s constructor (reason, SQLSTATE, vendor code), for code that throws its
    /// own; the status is VS_ERR_SQL.
    SQLException(const std::string &reason, const std::string &sqlState, int vendorCode)
        : std::runtime_error(reason), errorCode_(vendorCode), sqlState_(sqlState),
          status_(VS_ERR_SQL) {}

    /// The server error number (e.g. 1146), 0 when the error did not come from the server.
    int getErrorCode() const noexcept { return errorCode_; }
    /// The SQLSTATE (e.g. "42S02"), empty when not a SQL error.
    const std::string &getSQLState() const noexcept { return sqlState_; }
    /// The SQLSTATE as a C string (Connector/C++ has both).
    const char *getSQLStateCStr() const noexcept { return sqlState_.c_str(); }
    /// The library status behind the error (VS_ERR_TIMEOUT, VS_ERR_SQL, ...).
    VsStatus status() const noexcept { return status_; }

private:
    int errorCode_;
    std::string sqlState_;
    VsStatus status_;
};

namespace detail {
/// Throws an SQLException built from the calling thread's last error.
[[noreturn]] void throwLastError(VsStatus status);

/// Throws unless `status` is VS_OK.
inline void check(VsStatus status) {
    if (status != VS_OK) throwLastError(status);
}
}  // namespace detail

}  // namespace vs

#endif
