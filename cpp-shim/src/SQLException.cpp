#include "vs/SQLException.h"

namespace vs {
namespace detail {

void throwLastError(VsStatus status) {
    throw SQLException(vs_last_error(), vs_last_sql_error_code(), vs_last_sqlstate(), status);
}

}  // namespace detail
}  // namespace vs
