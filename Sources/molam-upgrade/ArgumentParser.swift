/// What the user typed, checked against the command's spec.
struct ParsedArguments {
    let command: CommandSpec
    var values: [String: String] = [:]
    var flags: Set<String> = []
    var positionals: [String] = []

    func value(_ name: String) -> String? { values[name] }
    func flag(_ name: String) -> Bool { flags.contains(name) }
}

/// A command line that cannot be run: one line, naming what is wrong (exit 2).
struct UsageError: Error, CustomStringConvertible {
    let description: String
    let command: String?

    var hint: String {
        command.map { "see '\(CommandLineSpec.tool) \($0) --help'" } ?? "see '\(CommandLineSpec.tool) --help'"
    }
}

enum ArgumentParser {
    /// Parses `arguments` (without the program name) for `command`. Options take their value as the
    /// next argument or after `=`; each option may appear once.
    static func parse(_ arguments: [String], for command: CommandSpec) throws(UsageError) -> ParsedArguments {
        var parsed = ParsedArguments(command: command)
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("-"), argument != "-" else {
                parsed.positionals.append(argument)
                continue
            }
            var name = argument
            var inlineValue: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            guard let option = command.option(named: name) else {
                throw UsageError(description: "unknown option '\(name)' for '\(command.name)'", command: command.name)
            }
            let key = option.names.last ?? name
            if let valueName = option.value {
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard index < arguments.count else {
                        throw UsageError(
                            description: "option '\(name)' needs a value (\(valueName))", command: command.name)
                    }
                    value = arguments[index]
                    index += 1
                }
                guard parsed.values[key] == nil else {
                    throw UsageError(description: "option '\(name)' is given more than once", command: command.name)
                }
                guard !value.isEmpty else {
                    throw UsageError(description: "option '\(name)' needs a non-empty value", command: command.name)
                }
                parsed.values[key] = value
            } else {
                guard inlineValue == nil else {
                    throw UsageError(description: "option '\(name)' takes no value", command: command.name)
                }
                parsed.flags.insert(key)
            }
        }
        return parsed
    }
}
