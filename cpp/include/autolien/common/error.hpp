// Domain errors of the core. Ordinary argument errors use std::invalid_argument
// (ValueError) and std::out_of_range (IndexError); the bindings map Error to
// autolien.AutolienError so that callers can catch our failures as one family.
#pragma once

#include <stdexcept>
#include <string>

namespace autolien {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

} // namespace autolien
