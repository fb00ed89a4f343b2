// Errors are values. Every fallible call returns Status or Result<T>; no exception crosses
// the library's boundary. A Status carries a code from a small closed set and a one-line
// message; context is prepended as the error travels up ("pull REF: blob sha256:…: cause").
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace hoist {

enum class StatusCode {
  kOk = 0,
  kCancelled,           // the caller asked to stop
  kInvalidArgument,     // bad reference, bad flag, malformed input from the user
  kNotFound,            // manifest or blob unknown
  kAlreadyExists,
  kUnauthenticated,     // 401
  kPermissionDenied,    // 403
  kDataLoss,            // digest/size/diff_id mismatch, corrupt or hostile content
  kUnavailable,         // connection refused/reset, 5xx: worth retrying
  kResourceExhausted,   // disk full, size caps
  kFailedPrecondition,  // state does not allow the operation (not root, locked, ...)
  kUnimplemented,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "message" for errors, "OK" for success.
  std::string ToString() const { return ok() ? "OK" : message_; }

  // Returns this status with "context: " in front of its message; OK stays OK.
  Status WithContext(std::string_view context) const&;
  Status WithContext(std::string_view context) &&;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status CancelledError(std::string message);
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status UnauthenticatedError(std::string message);
Status PermissionDeniedError(std::string message);
Status DataLossError(std::string message);
Status UnavailableError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
// An error from a failed system call: the code follows errno (ENOSPC → ResourceExhausted,
// ENOENT → NotFound, EACCES/EPERM → PermissionDenied, ...), the message ends in strerror.
Status ErrnoError(int err, std::string_view what);

// A value or the error that prevented it. Never holds an OK status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok());
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result built from OK");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace hoist
