// crash-harness: kills a real store process with SIGKILL, again and again, and checks after every
// kill that nothing it acknowledged was lost and every invariant holds.
//
//   crash-harness --kills 1000 [--seed S] [--dir D] [--keep] [--max-delay-ms 300]
//   crash-harness child --dir D --seed S [--tag T]          (started by the parent)
//
// The parent starts this same executable in `child` mode. The child opens a store on the real
// disk and claims from many tasks at once, creating campaigns as they sell out, with small
// segments so that segment rolls happen several times a second; it prints every acknowledged
// write to its stdout (a pipe) only after the call returned. The parent kills it at a random
// moment (while it opens, while it claims, or right as a new segment file appears), reopens the
// store, and verifies it against every line it received: see Parent.swift.
//
// A simulated disk proves the same guarantees under power loss (Tests/…/Simulation*.swift); this
// harness proves them for a real process on a real kernel and file system, where the kill lands
// wherever the scheduler happens to be.

import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
do {
  if arguments.first == "child" {
    try await Child.run(Array(arguments.dropFirst()))
  } else {
    exit(try await Parent.run(arguments))
  }
} catch let error as UsageError {
  FileHandle.standardError.write(Data("crash-harness: \(error.message)\n\(usage)\n".utf8))
  exit(2)
} catch {
  FileHandle.standardError.write(Data("crash-harness: \(error)\n".utf8))
  exit(1)
}
