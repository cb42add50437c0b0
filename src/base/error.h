#pragma once
// Errors as values: every module declares `enum class Errc` and registers it as a
// boost::system error category through SimpleErrorCategory, so results compose as
// boost::system::result<T> across modules without exceptions.

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <string>

namespace peertun::base {

template <class T>
using Result = boost::system::result<T, boost::system::error_code>;

using ErrorCode = boost::system::error_code;

// A category whose messages come from a plain function: enough for every module's Errc.
class SimpleErrorCategory final : public boost::system::error_category {
 public:
  using MessageFn = const char* (*)(int) noexcept;
  constexpr SimpleErrorCategory(const char* name, MessageFn message) noexcept
      : name_(name), message_(message) {}

  const char* name() const noexcept override { return name_; }
  std::string message(int ev) const override { return message_(ev); }

 private:
  const char* name_;
  MessageFn message_;
};

}  // namespace peertun::base
