using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Inference.Engine.Security;

/// <summary>Loading certificates from configuration and verifying a peer's against a configured authority.</summary>
internal static class Certificates
{
    /// <summary>
    /// Loads a certificate with its private key: PKCS#12 (.pfx, .p12) or PEM (key in <paramref name="key"/>,
    /// or in the certificate file itself when null or empty).
    /// </summary>
    public static X509Certificate2 Load(string certificate, string? key, string? password)
    {
        // Configuration gives empty strings for keys left unset.
        key = string.IsNullOrWhiteSpace(key) ? null : key;
        password = string.IsNullOrEmpty(password) ? null : password;
        string extension = Path.GetExtension(certificate);
        if (extension.Equals(".pfx", StringComparison.OrdinalIgnoreCase) || extension.Equals(".p12", StringComparison.OrdinalIgnoreCase))
        {
            return X509CertificateLoader.LoadPkcs12FromFile(certificate, password);
        }
        var loaded = string.IsNullOrEmpty(password)
            ? X509Certificate2.CreateFromPemFile(certificate, key)
            : X509Certificate2.CreateFromEncryptedPemFile(certificate, password, key);
        // Linux's TLS stack wants the key in a form it can export; a PKCS#12 round trip gives that.
        using (loaded)
        {
            return X509CertificateLoader.LoadPkcs12(loaded.Export(X509ContentType.Pkcs12), null);
        }
    }

    /// <summary>Every certificate of a PEM file (an authority and its intermediates).</summary>
    public static X509Certificate2Collection LoadAuthorities(string path)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(path);
        if (authorities.Count == 0)
        {
            throw new InvalidDataException($"{path} holds no PEM certificate.");
        }
        return authorities;
    }

    /// <summary>
    /// Whether <paramref name="peer"/> verifies: against <paramref name="authorities"/> alone when given (a private
    /// authority), else as the platform judged it. Host names are still checked by the caller's TLS stack.
    /// </summary>
    public static bool Verify(X509Certificate? peer, SslPolicyErrors errors, X509Certificate2Collection? authorities)
    {
        if (peer is null)
        {
            return false;
        }
        if (authorities is null)
        {
            return errors == SslPolicyErrors.None;
        }
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (peer is X509Certificate2 certificate)
        {
            return chain.Build(certificate);
        }
        using var copy = X509CertificateLoader.LoadCertificate(peer.GetRawCertData());
        return chain.Build(copy);
    }
}
