// couponstore: the command-line tool. Hand-rolled argument parsing (no dependencies).

import CouponStore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A command of the tool.
struct Command {
  var name: String
  var usage: String
  var summary: String
  var help: String
  var run: ([String]) async throws -> Int32
}

let commands: [Command] = [
  Command(
    name: "demo", usage: "couponstore demo [--dir DIR] [--users N] [--stock N] [--keep]",
    summary: "run a flash sale against a real store and verify it",
    help: """
      Creates a store in a fresh directory (default: a new folder under the temporary
      directory), runs a flash sale of 100,000 concurrent claimants against 10,000 coupons,
      closes the store, reopens it, verifies every invariant (never oversold, one coupon per
      user, unique codes, identical state after reopening) and prints what happened and the
      durable claims per second. Exits non-zero if any check fails.
        --dir DIR    where to create the store (must not exist yet)
        --users N    number of concurrent claimants (default 100000)
        --stock N    coupons in the sale (default 10000)
        --keep       keep the store directory afterwards
      """, run: Demo.run),
  Command(
    name: "inspect", usage: "couponstore inspect DIR [--code CODE]",
    summary: "print campaigns, counts, snapshots, log size and last sequence, or one coupon",
    help: """
      Recovers the store in DIR read-only (newest valid snapshot, then the log; no lock
      taken, nothing written) and prints its campaigns with their counts, the snapshots and
      log segments with their sizes, and the last sequence number.
        --code CODE  print that coupon instead: campaign, state, owner, lock expiry,
                     redemptions, and its history (assigned, locked, unlocked, expired,
                     redeemed, rolled back, each with time and user). Exits 1 if no coupon
                     has the code.
      """, run: Tools.inspect),
  Command(
    name: "import", usage: "couponstore import DIR --campaign ID FILE",
    summary: "upload the codes of FILE (one per line) to a pool campaign",
    help: """
      Opens the store in DIR (it must not be open elsewhere) and uploads every line of FILE
      (UTF-8; lines end with \\n or \\r\\n) as a code to the pool of campaign ID, showing a
      progress line. Prints how many codes were added and the rejected ones with their
      reason (empty, tooLong, controlCharacter, duplicateInUpload, alreadyExists). The codes
      become claimable together, once the whole file is durable.
      """, run: BookTools.importCodes),
  Command(
    name: "verify", usage: "couponstore verify DIR",
    summary: "check every checksum and invariant; non-zero exit on any problem",
    help: """
      Recovers the store in DIR read-only, verifying the checksum of every record, every
      block of every snapshot, and every invariant (stock never exceeded, per-user limits,
      unique codes, consistent indexes); checks that the previous snapshot plus the log
      rebuilds exactly the state of the newest one.
      Exits 0 if the store is healthy, 1 if a problem was found (each is printed), 2 on usage
      errors.
      """, run: Tools.verify),
  Command(
    name: "snapshot", usage: "couponstore snapshot DIR",
    summary: "write a snapshot now, so that the next open replays little log",
    help: """
      Opens the store in DIR (taking its lock; it must not be open elsewhere), writes a
      snapshot of its whole state, deletes the log segments and older snapshots it makes
      redundant (the previous snapshot and the log after it are kept as a fallback), and
      closes it. Prints the snapshot's file, the log sequence it covers and its size.
      """, run: Tools.snapshot),
  Command(
    name: "dump", usage: "couponstore dump DIR",
    summary: "print every log event as a line of JSON",
    help: """
      Prints every record of the log in DIR as one JSON object per line, in log order
      (read-only).
      """, run: Tools.dump),
]

@MainActor func printUsage() {
  print("couponstore: an embedded, crash-safe datastore for coupon campaigns and flash sales\n")
  print("usage: couponstore COMMAND [ARGS]   (couponstore COMMAND --help for details)\n")
  for command in commands {
    print("  \(command.name.padding(toLength: 10, withPad: " ", startingAt: 0))\(command.summary)")
  }
}

func fail(_ message: String) -> Int32 {
  FileHandle.standardError.write(Data("couponstore: \(message)\n".utf8))
  return 2
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, !["-h", "--help", "help"].contains(name) else {
  printUsage()
  exit(arguments.isEmpty ? 2 : 0)
}
guard let command = commands.first(where: { $0.name == name }) else {
  printUsage()
  exit(fail("unknown command \"\(name)\""))
}
let rest = Array(arguments.dropFirst())
if rest.contains("--help") || rest.contains("-h") {
  print("usage: \(command.usage)\n\n\(command.help)")
  exit(0)
}
do {
  exit(try await command.run(rest))
} catch let error as UsageError {
  exit(fail(error.message))
} catch let error as CouponStoreError {
  _ = fail(error.description)
  exit(1)
} catch {
  exit(fail("\(error)"))
}
