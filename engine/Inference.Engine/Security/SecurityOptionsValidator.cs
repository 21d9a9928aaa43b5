using System.Security.Cryptography;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Security;

/// <summary>Checks <c>Inference:Security</c> at start: the files exist and load, tokens are long enough.</summary>
internal sealed class SecurityOptionsValidator : IValidateOptions<SecurityOptions>
{
    public const int MinimumTokenLength = 16;

    public ValidateOptionsResult Validate(string? name, SecurityOptions options)
    {
        var rules = new ConfigurationRules(SecurityOptions.Section);
        for (int i = 0; i < options.Tokens.Count; i++)
        {
            rules.Require(options.Tokens[i] is { Length: >= MinimumTokenLength } token && token == token.Trim(), $"Tokens:{i}", "(hidden)",
                $"must be at least {MinimumTokenLength} characters with no surrounding spaces");
        }
        for (int i = 0; i < options.ScopedTokens.Count; i++)
        {
            var scoped = options.ScopedTokens[i];
            rules.Require(scoped.Token is { Length: >= MinimumTokenLength } token && token == token.Trim(), $"ScopedTokens:{i}:Token", "(hidden)",
                $"must be at least {MinimumTokenLength} characters with no surrounding spaces");
            rules.Require(ScopeNames.Parse(scoped.Scopes) is not null, $"ScopedTokens:{i}:Scopes", scoped.Scopes, "must list scopes among score, features, ingest, admin, sync (comma-separated)");
        }
        var tls = options.Tls;
        rules.Require(ScopeNames.Parse(tls.ClientCertificateScopes) is not null, "Tls:ClientCertificateScopes", tls.ClientCertificateScopes,
            "must list scopes among score, features, ingest, admin, sync (comma-separated)");
        // Any publicly trusted certificate would pass the system's trust store: client certificates are taken from a named authority only.
        rules.Require(tls.ClientCertificates == ClientCertificates.None || !string.IsNullOrWhiteSpace(tls.ClientCa), "Tls:ClientCa", tls.ClientCa,
            "must name the authority client certificates are accepted from (PEM) when Tls:ClientCertificates is Allow or Require");
        rules.Require(Enum.IsDefined(tls.ClientCertificates), "Tls:ClientCertificates", tls.ClientCertificates, "must be None, Allow or Require");
        if (tls.Enabled)
        {
            Loads(rules, "Tls:Certificate", tls.Certificate!, () => Certificates.Load(tls.Certificate!, tls.Key, tls.Password).Dispose());
        }
        else
        {
            rules.Require(tls.ClientCertificates == ClientCertificates.None, "Tls:ClientCertificates", tls.ClientCertificates, "needs TLS (Inference:Security:Tls:Certificate)");
        }
        if (!string.IsNullOrWhiteSpace(tls.ClientCa))
        {
            Loads(rules, "Tls:ClientCa", tls.ClientCa, () => Certificates.LoadAuthorities(tls.ClientCa));
        }
        var client = options.Client;
        if (!string.IsNullOrWhiteSpace(client.Ca))
        {
            Loads(rules, "Client:Ca", client.Ca, () => Certificates.LoadAuthorities(client.Ca));
        }
        if (!string.IsNullOrWhiteSpace(client.Certificate))
        {
            Loads(rules, "Client:Certificate", client.Certificate, () => Certificates.Load(client.Certificate, client.Key, client.Password).Dispose());
        }
        return rules.Result;
    }

    private static void Loads(ConfigurationRules rules, string key, string path, Action load)
    {
        try
        {
            load();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or CryptographicException or InvalidDataException or ArgumentException)
        {
            rules.Require(false, key, path, $"must name a readable certificate file: {error.Message}");
        }
    }
}
