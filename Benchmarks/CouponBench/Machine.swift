// What the numbers were measured on: cores, CPU, memory, OS, the data directory's disk and file
// system, the compiler and build, and how busy the machine was.
//
// "How busy" is measured, not guessed: the CPU time the whole machine spent (from /proc/stat)
// minus this process's own (getrusage), over the wall time, is how many cores other processes
// used meanwhile. A result taken while others used a core is pessimistic, and says so.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The machine and disk a run measured.
struct MachineDescription: Codable, Sendable {
  var cores: Int
  var cpu: String
  var memoryBytes: Int64
  var os: String
  var kernel: String
  var swift: String
  var build: String
  var dataDirectory: String
  var fileSystem: String
  var device: String
  /// Block-device facts that decide what `fdatasync` costs (rotational, volatile write cache).
  var deviceDetail: String
  /// The 1-, 5- and 15-minute load averages when the run started.
  var loadAverage: [Double]

  /// The file systems on which `fdatasync` writes nothing to a disk.
  var isMemoryFileSystem: Bool { ["tmpfs", "ramfs"].contains(fileSystem) }

  /// Describes this machine and the disk holding `dataDirectory` (which must exist).
  static func describe(dataDirectory: String) -> MachineDescription {
    let directory = URL(fileURLWithPath: dataDirectory).resolvingSymlinksInPath().path
    let mount = mountEntry(of: directory)
    return MachineDescription(
      cores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
      cpu: firstValue(in: "/proc/cpuinfo", key: "model name") ?? "unknown CPU",
      memoryBytes: (firstValue(in: "/proc/meminfo", key: "MemTotal")
        .flatMap { Int64($0.split(separator: " ").first ?? "") } ?? 0) * 1024,
      os: osName(), kernel: kernelRelease(), swift: compilerVersion, build: buildConfiguration,
      dataDirectory: directory, fileSystem: mount?.type ?? "unknown",
      device: mount?.source ?? "unknown", deviceDetail: deviceDetail(mount?.source),
      loadAverage: loadAverage())
  }

  /// `"release"` or `"debug"`.
  static var buildConfiguration: String {
    #if DEBUG
      "debug"
    #else
      "release"
    #endif
  }

  /// The compiler that built this binary (what matters, not whichever `swift` is on the PATH).
  static var compilerVersion: String {
    #if compiler(>=6.4)
      "Swift 6.4 or later"
    #elseif compiler(>=6.3)
      "Swift 6.3"
    #elseif compiler(>=6.2)
      "Swift 6.2"
    #elseif compiler(>=6.1)
      "Swift 6.1"
    #else
      "Swift 6.0"
    #endif
  }

  private static func firstValue(in path: String, key: String) -> String? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(key) {
      guard let colon = line.firstIndex(of: ":") else { continue }
      return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return nil
  }

  private static func osName() -> String {
    guard let text = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8) else {
      return ProcessInfo.processInfo.operatingSystemVersionString
    }
    for line in text.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
      return line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(
        in: CharacterSet(charactersIn: "\""))
    }
    return ProcessInfo.processInfo.operatingSystemVersionString
  }

  private static func kernelRelease() -> String {
    var names = utsname()
    uname(&names)
    let field = { (value: Any) -> String in
      withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    return "\(field(names.sysname)) \(field(names.release)) \(field(names.machine))"
  }

  /// The mount holding `path`: the longest mount point that prefixes it (from
  /// /proc/self/mountinfo: field 5 is the mount point, and after " - " come type and source).
  private static func mountEntry(of path: String) -> (type: String, source: String)? {
    guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else {
      return nil
    }
    var best: (length: Int, type: String, source: String)?
    for line in text.split(separator: "\n") {
      let halves = line.components(separatedBy: " - ")
      guard halves.count == 2 else { continue }
      let fields = halves[0].split(separator: " ")
      let tail = halves[1].split(separator: " ")
      guard fields.count >= 5, tail.count >= 2 else { continue }
      let point = String(fields[4]).replacingOccurrences(of: "\\040", with: " ")
      let covers = point == "/" || path == point || path.hasPrefix(point + "/")
      guard covers, point.count >= (best?.length ?? -1) else { continue }
      best = (point.count, String(tail[0]), String(tail[1]))
    }
    return best.map { ($0.type, $0.source) }
  }

  /// Rotational or not, and the write-cache mode, from /sys/block (for /dev/sdXN the parent
  /// disk's queue).
  private static func deviceDetail(_ source: String?) -> String {
    guard let source, source.hasPrefix("/dev/") else { return "" }
    var name = String(source.dropFirst("/dev/".count))
    let fm = FileManager.default
    if !fm.fileExists(atPath: "/sys/block/\(name)") {
      // A partition: its disk is the sysfs parent (sda1 → sda, nvme0n1p1 → nvme0n1).
      let link = (try? fm.destinationOfSymbolicLink(atPath: "/sys/class/block/\(name)")) ?? ""
      name = URL(fileURLWithPath: link).deletingLastPathComponent().lastPathComponent
    }
    func read(_ file: String) -> String? {
      (try? String(contentsOfFile: "/sys/block/\(name)/\(file)", encoding: .utf8))?
        .trimmingCharacters(in: .whitespacesAndNewlines)
    }
    var facts: [String] = []
    if let model = read("device/model"), !model.isEmpty { facts.append(model) }
    if let rotational = read("queue/rotational") {
      facts.append(rotational == "1" ? "rotational" : "non-rotational")
    }
    if let cache = read("queue/write_cache") { facts.append("write cache: \(cache)") }
    if name.hasPrefix("vd") { facts.append("virtio") }
    return facts.joined(separator: ", ")
  }

  private static func loadAverage() -> [Double] {
    var loads = [Double](repeating: 0, count: 3)
    return getloadavg(&loads, 3) == 3 ? loads : []
  }
}

/// CPU time of the whole machine and of this process at one instant, to tell how many cores
/// other processes used between two samples.
///
/// Kernel threads (the file system's journal, block-layer workers) and interrupt time are left
/// out of "others": under a sync-heavy benchmark they mostly work for this process's own
/// `fdatasync`s, and counting them would call an idle machine loaded.
struct CPUSample: Sendable {
  var wallNanos: UInt64
  /// Seconds every CPU spent running processes (user, nice, system, and steal: another guest),
  /// minus the time of kernel threads; `nil` without /proc.
  var processBusySeconds: Double?
  /// Seconds of user and system time of this process.
  var ownSeconds: Double

  /// Samples now.
  static func now() -> CPUSample {
    let busy = machineBusy().map { $0 - kernelThreadSeconds() }
    return CPUSample(
      wallNanos: Clock.nanos(), processBusySeconds: busy, ownSeconds: processSeconds())
  }

  /// User and system CPU seconds of this process, every thread included (`getrusage`).
  static func processSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
      getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    #else
      getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
      + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
  }

  /// Cores used by other processes between `self` and `later` (nil where /proc/stat is missing).
  func backgroundCores(until later: CPUSample) -> Double? {
    guard let before = processBusySeconds, let after = later.processBusySeconds else {
      return nil
    }
    let wall = Clock.seconds(from: wallNanos, to: later.wallNanos)
    guard wall > 0 else { return nil }
    return max(0, (after - before) - (later.ownSeconds - ownSeconds)) / wall
  }

  private static var ticksPerSecond: Double { Double(sysconf(Int32(_SC_CLK_TCK))) }

  /// The "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal…, in clock
  /// ticks; user + nice + system + steal.
  private static func machineBusy() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
      let line = text.split(separator: "\n").first, line.hasPrefix("cpu ")
    else { return nil }
    let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard ticks.count >= 8 else { return nil }
    return (ticks[0] + ticks[1] + ticks[2] + ticks[7]) / ticksPerSecond
  }

  /// CPU seconds of every kernel thread (children of kthreadd, pid 2), from /proc/PID/stat:
  /// after the ")" closing the name come state, ppid, …, and utime and stime as the 12th and
  /// 13th fields.
  private static func kernelThreadSeconds() -> Double {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else {
      return 0
    }
    var ticks = 0.0
    for entry in entries where entry.first?.isNumber == true {
      guard let text = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
      else { continue }
      let fields = text[text.index(after: close)...].split(separator: " ")
      guard fields.count > 12, fields[1] == "2" || entry == "2" else { continue }
      ticks += (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
    }
    return ticks / ticksPerSecond
  }
}
