using Google.Protobuf.Collections;
using Inference.Models.Parameters;
using Inference.Proto.V1;

namespace Inference.Engine.Sync;

internal static class ParameterConversions
{
    public static void WriteTo(this ParameterSet parameters, RepeatedField<NamedTensor> tensors)
    {
        foreach (var parameter in parameters.Parameters)
        {
            var tensor = new NamedTensor { Name = parameter.Name };
            tensor.Shape.AddRange(parameter.Shape);
            tensor.Values.AddRange(parameter.Values);
            tensors.Add(tensor);
        }
    }

    /// <summary>Reads tensors off the wire; throws <see cref="InvalidParametersException"/> naming the bad tensor.</summary>
    public static ParameterSet ToParameterSet(this RepeatedField<NamedTensor> tensors)
    {
        var result = new List<NamedParameter>(tensors.Count);
        var names = new HashSet<string>();
        foreach (var tensor in tensors)
        {
            if (string.IsNullOrEmpty(tensor.Name) || !names.Add(tensor.Name))
            {
                throw new InvalidParametersException("shape", $"Tensor name '{tensor.Name}' is empty or repeated.");
            }
            long elements = 1;
            foreach (long dimension in tensor.Shape)
            {
                if (dimension < 0)
                {
                    throw new InvalidParametersException("shape", $"Tensor '{tensor.Name}' has a negative dimension.");
                }
                elements *= dimension;
            }
            if (elements != tensor.Values.Count)
            {
                throw new InvalidParametersException("shape", $"Tensor '{tensor.Name}' has {tensor.Values.Count} values for shape [{string.Join(',', tensor.Shape)}].");
            }
            foreach (float value in tensor.Values)
            {
                if (!float.IsFinite(value))
                {
                    throw new InvalidParametersException("not_finite", $"Tensor '{tensor.Name}' is not finite: it holds a NaN or infinite value.");
                }
            }
            result.Add(new NamedParameter(tensor.Name, [.. tensor.Shape], [.. tensor.Values]));
        }
        return new ParameterSet(result);
    }

    public static Moments ToMessage(this Models.Training.InputMoments moments)
    {
        var message = new Moments { Rows = moments.Rows };
        message.Sums.AddRange(moments.Sums);
        message.SumsOfSquares.AddRange(moments.SumsOfSquares);
        return message;
    }

    /// <summary>Null when the message carries none (an older worker, or none learned yet).</summary>
    public static Models.Training.InputMoments? ToMoments(this Moments? message)
    {
        if (message is null || (message.Rows == 0 && message.Sums.Count == 0))
        {
            return null;
        }
        if (message.Sums.Count != message.SumsOfSquares.Count)
        {
            throw new InvalidParametersException("shape", $"The input statistics have {message.Sums.Count} sums and {message.SumsOfSquares.Count} sums of squares.");
        }
        return new Models.Training.InputMoments(message.Rows, [.. message.Sums], [.. message.SumsOfSquares]);
    }

    public static void WriteTo(this IReadOnlyList<RowBlock> rows, RepeatedField<EmbeddingRows> blocks)
    {
        foreach (var block in rows)
        {
            var message = new EmbeddingRows { Input = block.Input, Dimension = block.Dimension };
            message.Keys.AddRange(block.Keys);
            message.Values.AddRange(block.Values);
            blocks.Add(message);
        }
    }

    /// <summary>Reads embedding rows off the wire (their shape is checked where they are applied).</summary>
    public static IReadOnlyList<RowBlock> ToRows(this RepeatedField<EmbeddingRows> blocks) =>
        [.. blocks.Select(b => new RowBlock(b.Input, b.Dimension, [.. b.Keys], [.. b.Values]))];
}
