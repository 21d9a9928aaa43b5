using Inference.Models.Parameters;
using Inference.Models.Training;
using static TorchSharp.torch;

namespace Inference.Models.Tests;

/// <summary>The dense optimizers and the models over id embeddings, against references.</summary>
public sealed class LearnerTests
{
    private const int Rows = 32;

    [Theory]
    [InlineData(DenseOptimizerKind.Adam)]
    [InlineData(DenseOptimizerKind.Adagrad)]
    [InlineData(DenseOptimizerKind.Sgd)]
    public void Dense_steps_equal_libtorchs_own_optimizer(DenseOptimizerKind kind)
    {
        var spec = new ModelSpec(ModelKind.Mlp, Inputs: 3, Hidden: 5);
        const double LearningRate = 0.05;
        using var learner = new OnlineLearner(spec, LearningRate, kind);
        using var reference = new ScoringModule(spec);
        var trainable = reference.parameters().Where(p => p.requires_grad).ToList();
        using var optimizer = kind switch
        {
            DenseOptimizerKind.Adam => optim.Adam(trainable, LearningRate),
            DenseOptimizerKind.Adagrad => optim.Adagrad(trainable, LearningRate),
            _ => (optim.Optimizer)optim.SGD(trainable, LearningRate),
        };
        var random = new Random(3);
        for (int step = 0; step < 20; step++)
        {
            var (x, y) = Batch(random, spec.Inputs);
            learner.Step(x, y, Rows);
            var learned = learner.Export();
            // The reference standardises as the learner did in this step (its running statistics).
            reference.SetInputStandardisation(learned.Find(ScoringModule.InputMeanName)!.Values, learned.Find(ScoringModule.InputScaleName)!.Values);
            using (var scope = NewDisposeScope())
            {
                optimizer.zero_grad();
                nn.functional.binary_cross_entropy_with_logits(reference.forward(reference.Inputs(x, Rows)), from_array(y)).backward();
                optimizer.step();
            }
            AssertClose(reference.Export(), learned, $"{kind}, step {step}");
        }
    }

    [Fact]
    public void An_adam_learner_restored_from_its_state_goes_on_exactly_like_the_original()
    {
        var spec = new ModelSpec(ModelKind.Mlp, Inputs: 3, Hidden: 5);
        using var original = new OnlineLearner(spec, 0.05, DenseOptimizerKind.Adam);
        var random = new Random(9);
        for (int step = 0; step < 5; step++)
        {
            var (x, y) = Batch(random, spec.Inputs);
            original.Step(x, y, Rows);
        }
        var state = original.ExportState();
        Assert.NotNull(state.Optimizer);
        using var restored = new OnlineLearner(spec, 0.05, DenseOptimizerKind.Adam);
        restored.ImportState(state);
        for (int step = 0; step < 5; step++)
        {
            var (x, y) = Batch(random, spec.Inputs);
            original.Step(x, y, Rows);
            restored.Step(x, y, Rows);
        }
        Assert.True(original.Export().ApproximatelyEquals(restored.Export()), "the restored learner's weights differ from the original's");
        // Without its moments, the same steps land elsewhere: the state is what made them equal.
        using var fresh = new OnlineLearner(spec, 0.05, DenseOptimizerKind.Adam);
        fresh.ImportState(state with { Optimizer = null });
        var (x2, y2) = Batch(random, spec.Inputs);
        original.Step(x2, y2, Rows);
        fresh.Step(x2, y2, Rows);
        Assert.False(original.Export().ApproximatelyEquals(fresh.Export(), 1e-7f));
    }

    [Fact]
    public void A_dot_product_model_hands_back_the_closed_form_gradient_of_its_embeddings()
    {
        const int D = 4;
        var spec = new ModelSpec(ModelKind.DotProduct, Inputs: 2, IdDimensions: [D, D]);
        // A learning rate too small to move the weights: the step's logits are the prediction's.
        using var learner = new OnlineLearner(spec, 1e-12);
        var random = new Random(4);
        var (x, y) = Batch(random, spec.Inputs);
        var embeddings = Enumerable.Range(0, Rows * 2 * D).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var gradients = new float[Rows * 2 * D];
        // The first step sets the standardisation to this batch's statistics; the same batch again leaves it there.
        learner.Step(x, embeddings, y, Rows, gradients);
        var probabilities = new float[Rows];
        learner.Predict(x, embeddings, Rows, probabilities);
        learner.Step(x, embeddings, y, Rows, gradients);
        for (int r = 0; r < Rows; r++)
        {
            // d(mean loss)/d(user) = (p − y) · item / rows, and the other way round.
            float error = (probabilities[r] - y[r]) / Rows;
            for (int d = 0; d < D; d++)
            {
                float user = embeddings[r * 2 * D + d], item = embeddings[r * 2 * D + D + d];
                Assert.Equal(error * item, gradients[r * 2 * D + d], 1e-6f);
                Assert.Equal(error * user, gradients[r * 2 * D + D + d], 1e-6f);
            }
        }
    }

    [Fact]
    public void An_embedding_mlp_hands_back_the_gradient_finite_differences_find()
    {
        var spec = new ModelSpec(ModelKind.EmbeddingMlp, Inputs: 2, Hidden: 6, IdDimensions: [3, 2]);
        using var module = new ScoringModule(spec);
        using var learner = new OnlineLearner(spec, 1e-12);
        learner.Import(module.Export());
        var random = new Random(6);
        const int rows = 4;
        var x = Enumerable.Range(0, rows * spec.Inputs).Select(_ => (float)random.NextDouble()).ToArray();
        var y = Enumerable.Range(0, rows).Select(r => (float)(r % 2)).ToArray();
        var embeddings = Enumerable.Range(0, rows * spec.EmbeddingWidth).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var gradients = new float[embeddings.Length];
        learner.Step(x, embeddings, y, rows, gradients);
        // The learner standardised with this batch's statistics: the reference module does the same.
        var learned = learner.Export();
        module.SetInputStandardisation(learned.Find(ScoringModule.InputMeanName)!.Values, learned.Find(ScoringModule.InputScaleName)!.Values);
        double Loss(float[] e)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var logits = module.Forward(module.Inputs(x, rows), module.Embeddings(e, rows)).to_type(ScalarType.Float64);
            return nn.functional.binary_cross_entropy_with_logits(logits, from_array(y).to_type(ScalarType.Float64)).item<double>();
        }
        const float H = 1e-3f;
        for (int i = 0; i < embeddings.Length; i++)
        {
            var up = (float[])embeddings.Clone();
            var down = (float[])embeddings.Clone();
            up[i] += H;
            down[i] -= H;
            double numeric = (Loss(up) - Loss(down)) / (2 * H);
            Assert.True(Math.Abs(numeric - gradients[i]) <= 2e-4, $"coordinate {i}: {gradients[i]} from the learner, {numeric} by finite differences");
        }
    }

    [Theory]
    [InlineData(ModelKind.Logistic, new[] { 4 })]
    [InlineData(ModelKind.EmbeddingMlp, new int[0])]
    [InlineData(ModelKind.DotProduct, new[] { 4, 8 })]
    [InlineData(ModelKind.DotProduct, new[] { 4 })]
    public void A_model_whose_ids_do_not_fit_its_kind_is_refused(ModelKind kind, int[] ids)
    {
        var error = Assert.Throws<ArgumentException>(() => new ScoringModule(new ModelSpec(kind, Inputs: 2, IdDimensions: ids)));
        Assert.Contains(kind.ToString(), error.Message);
    }

    private static (float[] X, float[] Y) Batch(Random random, int inputs)
    {
        var x = new float[Rows * inputs];
        var y = new float[Rows];
        for (int r = 0; r < Rows; r++)
        {
            for (int c = 0; c < inputs; c++)
            {
                x[r * inputs + c] = (float)(random.NextDouble() * 4 - 2);
            }
            y[r] = random.NextDouble() < 1 / (1 + Math.Exp(-x[r * inputs])) ? 1f : 0f;
        }
        return (x, y);
    }

    private static void AssertClose(ParameterSet expected, ParameterSet actual, string what)
    {
        foreach (var parameter in expected.Parameters)
        {
            var other = actual.Find(parameter.Name)!;
            for (int i = 0; i < parameter.Values.Length; i++)
            {
                Assert.True(Math.Abs(parameter.Values[i] - other.Values[i]) <= 1e-6f * Math.Max(1, Math.Abs(parameter.Values[i])),
                    $"{what}: {parameter.Name}[{i}] is {other.Values[i]}, libtorch's optimizer gives {parameter.Values[i]}");
            }
        }
    }
}
