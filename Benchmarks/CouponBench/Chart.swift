// `--svg FILE`: two hand-written SVG charts side by side.
//
// Left: flash-sale durable claims/s against concurrency (log–log), the median with its min–max
// whisker, beside the disk's limit for each concurrency. Right: latency distributions (flash-sale
// at each concurrency, and open-loop), percentile on an "nines" axis (50, 90, 99, 99.9, 99.99) so
// the tail gets the room it deserves, with the raw fdatasync p50 and p99 as horizontal lines.
// Plain SVG 1.1 with no scripts or external fonts, so it renders anywhere (browsers, GitHub).

import Foundation

enum Chart {
  static let panelWidth = 520.0
  static let panelHeight = 400.0
  static let margin = (left: 78.0, right: 20.0, top: 44.0, bottom: 56.0)
  static let palette = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
  ]

  /// The whole SVG document for a run's report.
  static func svg(_ report: BenchReport) -> String {
    let width = panelWidth * 2
    var out = """
      <?xml version="1.0" encoding="UTF-8"?>
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(panelHeight + 40))" \
      viewBox="0 0 \(Int(width)) \(Int(panelHeight + 40))" font-family="Helvetica, Arial, sans-serif" \
      font-size="12">
      <rect width="100%" height="100%" fill="white"/>

      """
    let caption =
      "coupon-bench \(report.date) · \(report.machine.cores) cores, \(report.machine.build) · "
      + "\(report.machine.fileSystem) on \(report.machine.device) · fdatasync p50 "
      + formatNanos(report.baseline.syncLatency.p50)
      + (report.baseline.synchronous ? "" : " · --no-sync (not durable)")
    out += text(width / 2, panelHeight + 28, caption, anchor: "middle", size: 11, color: "#555")
    out += throughputPanel(report)
    out += latencyPanel(report, offsetX: panelWidth)
    out += "</svg>\n"
    return out
  }

  // MARK: Panels

  private static func throughputPanel(_ report: BenchReport) -> String {
    var out = text(
      panelWidth / 2, 22, "flash-sale: durable claims/s vs concurrency", anchor: "middle", size: 14,
      bold: true)
    let rows = (report.scenarios.first { $0.name == "flash-sale" }?.rows ?? [])
      .filter { $0.parameter != nil && $0.throughput != nil }
    guard !rows.isEmpty else {
      return out + text(panelWidth / 2, panelHeight / 2, "no flash-sale results", anchor: "middle")
    }
    let xs = rows.map { $0.parameter! }
    var ys = rows.flatMap { [$0.throughput!.min, $0.throughput!.max] }
    ys += rows.compactMap(\.limit)
    let xAxis = LogAxis(
      low: xs.min()!, high: xs.max()!, from: margin.left, to: panelWidth - margin.right)
    let yAxis = LogAxis(
      low: ys.min()!, high: ys.max()!, from: panelHeight - margin.bottom, to: margin.top)
    out += frame(offsetX: 0)
    out += xAxis.ticks(
      vertical: false, crossAt: panelHeight - margin.bottom,
      span: (margin.top, panelHeight - margin.bottom)
    ) { formatRate($0) }
    out += yAxis.ticks(
      vertical: true, crossAt: margin.left, span: (margin.left, panelWidth - margin.right)
    ) { formatRate($0) }
    out += text(panelWidth / 2, panelHeight - 18, "concurrent tasks", anchor: "middle")
    out += text(18, panelHeight / 2, "claims/s", anchor: "middle", rotate: true)
    let limits = rows.compactMap { row in
      row.limit.map { (xAxis.position(row.parameter!), yAxis.position($0)) }
    }
    if limits.count == rows.count {
      out += polyline(limits, color: "#999", dashed: true)
      out += legend(
        0, 0, "disk limit: C × 1/fdatasync p50, capped by bandwidth", color: "#999", dashed: true)
    }
    let points = rows.map { (xAxis.position($0.parameter!), yAxis.position($0.throughput!.median)) }
    out += polyline(points, color: palette[0])
    for row in rows {
      let x = xAxis.position(row.parameter!)
      out += line(
        x, yAxis.position(row.throughput!.min), x, yAxis.position(row.throughput!.max),
        color: palette[0])
      out +=
        "<circle cx=\"\(f(x))\" cy=\"\(f(yAxis.position(row.throughput!.median)))\" r=\"3.5\" fill=\"\(palette[0])\"/>\n"
      out += text(
        x + 6, yAxis.position(row.throughput!.median) - 6, formatRate(row.throughput!.median),
        size: 11, color: palette[0])
    }
    out += legend(0, 1, "measured: median, whisker min–max", color: palette[0])
    return out
  }

  private static func latencyPanel(_ report: BenchReport, offsetX: Double) -> String {
    var out = "<g transform=\"translate(\(f(offsetX)),0)\">\n"
    out += text(
      panelWidth / 2, 22, "latency distribution (per claim)", anchor: "middle", size: 14, bold: true
    )
    var series: [(label: String, points: [PercentilePoint])] = []
    for scenario in report.scenarios where ["flash-sale", "open-loop"].contains(scenario.name) {
      for row in scenario.rows {
        if let profile = row.profile, !profile.isEmpty {
          series.append(("\(scenario.name) \(row.label)", profile))
        }
      }
    }
    guard !series.isEmpty else {
      return out + text(panelWidth / 2, panelHeight / 2, "no latency results", anchor: "middle")
        + "</g>\n"
    }
    var values = series.flatMap { $0.points.map(\.nanos) }.filter { $0 > 0 }
    // The fdatasync latency measured just before flash-sale, when there is one.
    let sync =
      (report.scenarios.first { $0.name == "flash-sale" }?.baseline ?? report.baseline).syncLatency
    if report.baseline.synchronous { values += [sync.p50, sync.p99] }
    let yAxis = LogAxis(
      low: values.min() ?? 1, high: values.max() ?? 2, from: panelHeight - margin.bottom,
      to: margin.top)
    let nines = NinesAxis(from: margin.left, to: panelWidth - margin.right)
    out += frame(offsetX: 0)
    out += yAxis.ticks(
      vertical: true, crossAt: margin.left, span: (margin.left, panelWidth - margin.right)
    ) { formatNanos($0) }
    out += nines.ticks(baseline: panelHeight - margin.bottom, top: margin.top)
    out += text(panelWidth / 2, panelHeight - 18, "percentile", anchor: "middle")
    if report.baseline.synchronous {
      for (value, name) in [(sync.p50, "fdatasync p50"), (sync.p99, "fdatasync p99")] {
        let y = yAxis.position(value)
        out += line(margin.left, y, panelWidth - margin.right, y, color: "#999", dashed: true)
        out += text(
          panelWidth - margin.right - 4, y - 4, name, anchor: "end", size: 10, color: "#777")
      }
    }
    out += legendBackground(entries: series.count, width: 210)
    for (index, entry) in series.enumerated() {
      let color = palette[index % palette.count]
      let points = entry.points.map {
        (nines.position($0.percentile), yAxis.position(max($0.nanos, yAxis.low)))
      }
      out += polyline(points, color: color)
      out += legend(0, index, entry.label, color: color)
    }
    return out + "</g>\n"
  }

  // MARK: Axes

  /// A base-10 logarithmic axis from `low` to `high` (widened to whole decades).
  struct LogAxis {
    let low: Double
    let high: Double
    let from: Double
    let to: Double

    init(low: Double, high: Double, from: Double, to: Double) {
      let safeLow = max(low, 1e-9)
      self.low = pow(10, (log10(safeLow)).rounded(.down))
      self.high = Swift.max(pow(10, (log10(Swift.max(high, safeLow))).rounded(.up)), self.low * 10)
      self.from = from
      self.to = to
    }

    func position(_ value: Double) -> Double {
      let t = (log10(Swift.max(value, low)) - log10(low)) / (log10(high) - log10(low))
      return from + t * (to - from)
    }

    /// Grid lines and labels at every decade (and at 2× and 5× when there are few decades).
    func ticks(vertical: Bool, crossAt: Double, span: (Double, Double), label: (Double) -> String)
      -> String
    {
      var out = ""
      let decades = Int((log10(high) - log10(low)).rounded())
      var value = low
      while value <= high * 1.0001 {
        for step in decades <= 2 ? [1.0, 2, 5] : [1.0] where value * step <= high * 1.0001 {
          let tick = value * step
          let p = position(tick)
          if vertical {
            out += Chart.line(span.0, p, span.1, p, color: "#e5e5e5")
            out += Chart.text(crossAt - 6, p + 4, label(tick), anchor: "end", size: 11)
          } else {
            out += Chart.line(p, span.0, p, span.1, color: "#e5e5e5")
            out += Chart.text(p, crossAt + 16, label(tick), anchor: "middle", size: 11)
          }
        }
        value *= 10
      }
      return out
    }
  }

  /// Percentiles placed by their "nines": x = log10(1 / (1 − p)), so 90, 99, 99.9 are evenly
  /// spaced; the maximum sits one step to the right of 99.99.
  struct NinesAxis {
    let from: Double
    let to: Double
    static let labels: [(Double, String)] = [
      (0, "0"), (50, "50"), (90, "90"), (99, "99"), (99.9, "99.9"), (99.99, "99.99"), (100, "max"),
    ]

    func position(_ percentile: Double) -> Double {
      let nines = percentile >= 100 ? 5 : log10(1 / (1 - percentile / 100))
      return from + Swift.min(nines, 5) / 5 * (to - from)
    }

    func ticks(baseline: Double, top: Double) -> String {
      Self.labels.map { value, label in
        let x = position(value)
        return Chart.line(x, top, x, baseline, color: "#e5e5e5")
          + Chart.text(x, baseline + 16, label, anchor: "middle", size: 11)
      }.joined()
    }
  }

  // MARK: Primitives

  private static func frame(offsetX: Double) -> String {
    "<rect x=\"\(f(offsetX + margin.left))\" y=\"\(f(margin.top))\" "
      + "width=\"\(f(panelWidth - margin.left - margin.right))\" "
      + "height=\"\(f(panelHeight - margin.top - margin.bottom))\" fill=\"none\" stroke=\"#333\"/>\n"
  }

  /// A translucent box behind the legend, so curves under it stay visible but do not hide it.
  private static func legendBackground(entries: Int, width: Double) -> String {
    "<rect x=\"\(f(margin.left + 4))\" y=\"\(f(margin.top + 4))\" width=\"\(f(width))\" "
      + "height=\"\(f(Double(entries) * 16 + 6))\" fill=\"white\" fill-opacity=\"0.85\"/>\n"
  }

  private static func legend(
    _ column: Int, _ index: Int, _ label: String, color: String, dashed: Bool = false
  ) -> String {
    let x = margin.left + 10 + Double(column) * 200
    let y = margin.top + 16 + Double(index) * 16
    return line(x, y - 4, x + 22, y - 4, color: color, width: 2, dashed: dashed)
      + text(x + 28, y, label, size: 11)
  }

  static func line(
    _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, color: String, width: Double = 1,
    dashed: Bool = false
  ) -> String {
    "<line x1=\"\(f(x1))\" y1=\"\(f(y1))\" x2=\"\(f(x2))\" y2=\"\(f(y2))\" stroke=\"\(color)\" "
      + "stroke-width=\"\(f(width))\"" + (dashed ? " stroke-dasharray=\"5,4\"" : "") + "/>\n"
  }

  private static func polyline(_ points: [(Double, Double)], color: String, dashed: Bool = false)
    -> String
  {
    "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\""
      + (dashed ? " stroke-dasharray=\"5,4\"" : "") + " points=\""
      + points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ") + "\"/>\n"
  }

  static func text(
    _ x: Double, _ y: Double, _ content: String, anchor: String = "start", size: Double = 12,
    color: String = "#222", bold: Bool = false, rotate: Bool = false
  ) -> String {
    var attributes =
      "x=\"\(f(x))\" y=\"\(f(y))\" text-anchor=\"\(anchor)\" font-size=\"\(f(size))\" fill=\"\(color)\""
    if bold { attributes += " font-weight=\"bold\"" }
    if rotate { attributes += " transform=\"rotate(-90 \(f(x)) \(f(y)))\"" }
    return "<text \(attributes)>\(escape(content))</text>\n"
  }

  private static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;")
  }

  /// A coordinate with one decimal (keeps the file small and diffable).
  private static func f(_ value: Double) -> String { String(format: "%.1f", value) }
}
