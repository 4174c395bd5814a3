import CFuzzerDriver
import Foundation
import MBDataFuzzTargets

#if canImport(Glibc)
    import Glibc
#endif

/// `mbdata-fuzz TARGET [libFuzzer flags] [corpus folders]`: runs libFuzzer over one target.
/// Built only with `MBDATA_FUZZ=1` (see Tests/Fuzz/README.md and `make fuzz`).
@main
enum FuzzDriver {
    nonisolated(unsafe) static var target: FuzzTarget?

    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, arguments[1] != "--list", let chosen = FuzzTarget.named(arguments[1]) else {
            let names = FuzzTarget.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
            print("usage: mbdata-fuzz TARGET [libFuzzer flags] [corpus folders]\ntargets:\n\(names)")
            exit(arguments.count >= 2 && arguments[1] == "--list" ? 0 : 64)
        }
        target = chosen
        // libFuzzer sees argv without the target name.
        var argc = CommandLine.argc - 1
        var argv = CommandLine.unsafeArgv
        argv[1] = argv[0]
        var shifted = argv + 1
        let status = withUnsafeMutablePointer(to: &shifted) { pointer in
            mbdata_fuzzer_run(&argc, pointer) { data, size in
                let bytes = size == 0 || data == nil ? Data() : Data(bytes: data!, count: size)
                _ = try? FuzzDriver.target!.run(bytes)
                return 0
            }
        }
        exit(status)
    }
}
